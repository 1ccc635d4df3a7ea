import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { checkSecretName, SecretNotFound, type SecretReader } from "../secrets/secret-readers.js";

/**
 * Cloud: Secrets Manager, secret id = prefix + name (e.g. "tme/tasks/" + "db_password"). Apart
 * from environmentSecrets (secrets/secret-readers.ts), so that the local runtime does not load the SDK.
 */
export function secretsManagerSecrets(prefix: string, client = new SecretsManagerClient({})): SecretReader {
  return async (name) => {
    checkSecretName(name);
    try {
      const output = await client.send(new GetSecretValueCommand({ SecretId: `${prefix}${name}` }));
      if (output.SecretString === undefined) throw new SecretNotFound(`secret ${name} has no string value`);
      return output.SecretString;
    } catch (error) {
      if ((error as { name?: string }).name === "ResourceNotFoundException") {
        throw new SecretNotFound(`secret ${name} not found`);
      }
      throw error;
    }
  };
}
