import { InternalError } from "../../core/errors.js";

export type SecretReader = (name: string) => Promise<string>;

export class SecretNotFound extends InternalError {
  override name = "SecretNotFound";
}

const NAME = /^[A-Za-z0-9_./-]{1,200}$/;

/** Refuses a name no secret store would take (and that could reach outside the prefix). */
export function checkSecretName(name: string): void {
  if (!NAME.test(name)) throw new SecretNotFound(`secret name ${JSON.stringify(name)} is not valid`);
}

/**
 * Local runtime: a secret named "db_password" is the environment variable TME_SECRET_DB_PASSWORD
 * (non-alphanumerics become "_"). The shell plugin never passes TME_* variables to commands.
 */
export function environmentSecrets(env: Record<string, string | undefined> = process.env): SecretReader {
  return async (name) => {
    checkSecretName(name);
    const variable = `TME_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
    const value = env[variable];
    if (value === undefined)
      throw new SecretNotFound(`secret ${name} is not set (environment variable ${variable})`);
    return value;
  };
}
