import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { DatabaseConnection } from "../postgres/database.js";
import { tracedAwsClient } from "./lambda-telemetry.js";

interface DatabaseSecret {
  username: string;
  password: string;
  host?: string;
  port?: number;
  dbname?: string;
}

type Env = Record<string, string | undefined>;

/**
 * TLS as libpq's sslmode=verify-full: the chain must verify and the name must match the host.
 * The RDS Proxy presents an ACM certificate chaining to Amazon's root CAs, which are in Node's
 * own store; the RDS instance CAs (for a direct connection) reach Node through
 * NODE_EXTRA_CA_CERTS, which the stack points at Lambda's bundle /var/runtime/ca-cert.pem.
 */
export const VERIFY_FULL = { rejectUnauthorized: true } as const;

/**
 * The database secret, read from Secrets Manager on first use and again after the server
 * refused the password (the secret is rotated every dbSecretRotationDays).
 */
export class DatabaseSecretReader {
  private current: Promise<DatabaseSecret> | undefined;

  constructor(
    private readonly secretArn: string,
    private readonly secrets: Pick<SecretsManagerClient, "send"> = tracedAwsClient(
      new SecretsManagerClient({}),
    ),
  ) {}

  read(): Promise<DatabaseSecret> {
    this.current ??= this.secrets
      .send(new GetSecretValueCommand({ SecretId: this.secretArn }))
      .then((output) => JSON.parse(output.SecretString ?? "{}") as DatabaseSecret);
    this.current.catch(() => {
      this.current = undefined;
    });
    return this.current;
  }

  /** Forgets the secret, so the next connection reads the rotated one. */
  forget(): void {
    this.current = undefined;
  }
}

function secretArnOf(env: Env): string {
  const secretArn = env.DATABASE_SECRET_ARN;
  if (!secretArn)
    throw new Error("environment variable DATABASE_SECRET_ARN (or DATABASE_URL) is required in the cloud");
  return secretArn;
}

function where(env: Env, secret: DatabaseSecret) {
  return {
    host: env.DATABASE_HOST ?? secret.host ?? "localhost",
    port: Number(env.DATABASE_PORT ?? secret.port ?? 5432),
    database: env.DATABASE_NAME ?? secret.dbname ?? "tme",
  };
}

/** The database URL in the cloud, for one-shot clients (migrate): credentials from Secrets Manager, host from the RDS Proxy. */
export async function cloudDatabaseUrl(
  env: Env = process.env,
  secrets = tracedAwsClient(new SecretsManagerClient({})),
): Promise<string> {
  if (env.DATABASE_URL) return env.DATABASE_URL;
  const secret = await new DatabaseSecretReader(secretArnOf(env), secrets).read();
  const { host, port, database } = where(env, secret);
  return `postgres://${encodeURIComponent(secret.username)}:${encodeURIComponent(secret.password)}@${host}:${port}/${database}?sslmode=verify-full`;
}

/**
 * The pool's connection in the cloud: the password is asked for at every new connection and
 * re-read from Secrets Manager after a 28P01, so warm containers survive a rotation.
 */
export async function cloudDatabaseConnection(
  env: Env = process.env,
  secrets = tracedAwsClient(new SecretsManagerClient({})),
): Promise<{ connection: DatabaseConnection; forget: () => void; url: string }> {
  const reader = new DatabaseSecretReader(secretArnOf(env), secrets);
  const secret = await reader.read();
  const { host, port, database } = where(env, secret);
  return {
    connection: {
      host,
      port,
      database,
      user: secret.username,
      password: async () => (await reader.read()).password,
      ssl: VERIFY_FULL,
    },
    forget: () => reader.forget(),
    // No password in it: the secret's is the only copy.
    url: `postgres://${encodeURIComponent(secret.username)}@${host}:${port}/${database}?sslmode=verify-full`,
  };
}

/** Local tests run the handlers against a plain URL (DATABASE_URL) instead of the secret. */
export async function databaseOptions(env: Env) {
  if (env.DATABASE_URL) return { options: { connectionString: env.DATABASE_URL }, url: env.DATABASE_URL };
  const { connection, forget, url } = await cloudDatabaseConnection(env);
  return { options: { connection, onAuthenticationFailure: forget }, url };
}
