import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { InternalError } from "../../core/errors.js";

export type SecretReader = (name: string) => Promise<string>;

export class SecretNotFound extends InternalError {
  override name = "SecretNotFound";
}

const NAME = /^[A-Za-z0-9_./-]{1,200}$/;

function checkName(name: string): void {
  if (!NAME.test(name)) throw new SecretNotFound(`secret name ${JSON.stringify(name)} is not valid`);
}

/**
 * Local runtime: a secret named "db_password" is the environment variable TME_SECRET_DB_PASSWORD
 * (non-alphanumerics become "_"). The shell plugin never passes TME_* variables to commands.
 */
export function environmentSecrets(env: Record<string, string | undefined> = process.env): SecretReader {
  return async (name) => {
    checkName(name);
    const variable = `TME_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
    const value = env[variable];
    if (value === undefined)
      throw new SecretNotFound(`secret ${name} is not set (environment variable ${variable})`);
    return value;
  };
}

/** Cloud: Secrets Manager, secret id = prefix + name (e.g. "tme/tasks/" + "db_password"). */
export function secretsManagerSecrets(prefix: string, client = new SecretsManagerClient({})): SecretReader {
  return async (name) => {
    checkName(name);
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
