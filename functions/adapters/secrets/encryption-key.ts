import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ENCRYPTION_KEY_BYTES, parseEncryptionKey } from "../../core/crypto/secret-box.js";

type Env = Record<string, string | undefined>;

/**
 * The local runtime's key: TME_ENCRYPTION_KEY if set, else TME_DATA_DIR/encryption-key,
 * generated on first use with mode 600. Creating it with O_EXCL makes two processes that
 * start at once agree on one key: the loser reads the winner's file.
 */
export async function localEncryptionKey(dataDir: string, env: Env = process.env): Promise<Buffer> {
  if (env.TME_ENCRYPTION_KEY) return parseEncryptionKey(env.TME_ENCRYPTION_KEY, "TME_ENCRYPTION_KEY");
  const file = path.join(dataDir, "encryption-key");
  try {
    return parseEncryptionKey(readFileSync(file, "utf8"), file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${randomBytes(ENCRYPTION_KEY_BYTES).toString("base64")}\n`, {
      mode: 0o600,
      flag: "wx",
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return parseEncryptionKey(readFileSync(file, "utf8"), file);
}

/**
 * The cloud key: a Secrets Manager secret (ENCRYPTION_KEY_SECRET_ARN) holding the key as text.
 * The SDK is imported here, not at the top: the local runtime imports this module too, and the
 * client costs it about 16 MB of memory that it never uses.
 */
export async function cloudEncryptionKey(
  env: Env = process.env,
  client?: Pick<SecretsManagerClient, "send">,
): Promise<Buffer> {
  if (env.TME_ENCRYPTION_KEY) return parseEncryptionKey(env.TME_ENCRYPTION_KEY, "TME_ENCRYPTION_KEY");
  const arn = env.ENCRYPTION_KEY_SECRET_ARN;
  if (!arn) throw new Error("environment variable ENCRYPTION_KEY_SECRET_ARN is required in the cloud");
  const { GetSecretValueCommand, SecretsManagerClient } = await import("@aws-sdk/client-secrets-manager");
  const output = await (client ?? new SecretsManagerClient({})).send(
    new GetSecretValueCommand({ SecretId: arn }),
  );
  const text =
    output.SecretString ?? (output.SecretBinary ? Buffer.from(output.SecretBinary).toString("base64") : "");
  return parseEncryptionKey(text, `secret ${arn}`);
}
