import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { parseEncryptionKey } from "../../core/crypto/secret-box.js";

type Env = Record<string, string | undefined>;

/**
 * The cloud key: a Secrets Manager secret (ENCRYPTION_KEY_SECRET_ARN) holding the key as text.
 * Apart from the local one (encryption-key.ts), so that the local runtime does not load the SDK.
 */
export async function cloudEncryptionKey(
  env: Env = process.env,
  client: Pick<SecretsManagerClient, "send"> = new SecretsManagerClient({}),
): Promise<Buffer> {
  if (env.TME_ENCRYPTION_KEY) return parseEncryptionKey(env.TME_ENCRYPTION_KEY, "TME_ENCRYPTION_KEY");
  const arn = env.ENCRYPTION_KEY_SECRET_ARN;
  if (!arn) throw new Error("environment variable ENCRYPTION_KEY_SECRET_ARN is required in the cloud");
  const output = await client.send(new GetSecretValueCommand({ SecretId: arn }));
  const text =
    output.SecretString ?? (output.SecretBinary ? Buffer.from(output.SecretBinary).toString("base64") : "");
  return parseEncryptionKey(text, `secret ${arn}`);
}
