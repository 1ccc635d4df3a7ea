import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secretsManagerSecrets } from "../../functions/adapters/aws/secrets-manager-secrets.js";
import {
  environmentSecrets,
  SecretNotFound,
  type SecretReader,
} from "../../functions/adapters/secrets/secret-readers.js";
import { MOTO_MISSING, type Moto, motoInstalled, startMoto } from "../helpers/moto.js";

/**
 * The secret reader port (what a plugin's ctx.secrets reads): the environment locally, Secrets
 * Manager in the cloud. One contract, run against both twins.
 */
interface SecretReaderTwin {
  reader: SecretReader;
  /** Makes `name` hold `value` where this twin reads it. */
  put(name: string, value: string): Promise<void>;
}

function secretReaderContract(twin: string, setup: () => Promise<SecretReaderTwin>, skip?: string) {
  describe.skipIf(skip !== undefined)(`secret reader contract: ${twin}`, () => {
    let t: SecretReaderTwin;
    beforeAll(async () => {
      t = await setup();
    });

    it("reads a secret that is set, exactly as stored (newlines and non-ASCII kept)", async () => {
      await t.put("db_password", "s3cret\nline two ✓");
      expect(await t.reader("db_password")).toBe("s3cret\nline two ✓");
    });

    it("reads names with the punctuation a name may hold (/ . - _)", async () => {
      await t.put("tasks/api-token.v2", "token-value");
      expect(await t.reader("tasks/api-token.v2")).toBe("token-value");
    });

    it("refuses a secret that is not set with SecretNotFound naming it", async () => {
      const error = await t.reader("never_set").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SecretNotFound);
      expect((error as Error).message).toContain("never_set");
    });

    it("refuses a name outside [A-Za-z0-9_./-]{1,200} before asking the backend", async () => {
      for (const name of ["", "a b", "x;rm", "ä", "n".repeat(201)]) {
        const error = await t.reader(name).catch((e: unknown) => e);
        expect(error, JSON.stringify(name)).toBeInstanceOf(SecretNotFound);
        expect((error as Error).message).toContain("is not valid");
      }
    });
  });
}

secretReaderContract("environment (local)", async () => {
  const env: Record<string, string | undefined> = {};
  return {
    reader: environmentSecrets(env),
    async put(name, value) {
      env[`TME_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`] = value;
    },
  };
});

let moto: Moto | undefined;
afterAll(async () => {
  await moto?.stop();
});
if (!motoInstalled) console.log(`[secret reader contract] Secrets Manager twin skipped: ${MOTO_MISSING}`);
secretReaderContract(
  "Secrets Manager (cloud, on moto_server)",
  async () => {
    moto = await startMoto();
    const client = new SecretsManagerClient(moto.clientConfig);
    const prefix = "tme/tasks/";
    return {
      reader: secretsManagerSecrets(prefix, client),
      async put(name, value) {
        await client.send(new CreateSecretCommand({ Name: `${prefix}${name}`, SecretString: value }));
      },
    };
  },
  motoInstalled ? undefined : MOTO_MISSING,
);
