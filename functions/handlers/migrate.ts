import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { cloudDatabaseUrl } from "../adapters/aws/cloud-database.js";
import { lambdaHandler, tracedAwsClient } from "../adapters/aws/lambda-telemetry.js";
import { PostgresApiKeyStore } from "../adapters/postgres/api-keys-repository.js";
import { Database } from "../adapters/postgres/database.js";
import { migrate } from "../adapters/postgres/migrator.js";
import { ensureBootstrapKey } from "../core/auth/api-keys.js";

/**
 * Registers the stack's first admin key (the secret FIRST_ADMIN_KEY_SECRET_ARN) as an admin
 * key of the default namespace: after `cdk deploy` it is the way in. A key that was revoked
 * stays revoked on every later deploy.
 */
export async function registerFirstAdminKey(
  databaseUrl: string,
  secretArn: string,
  secrets: Pick<SecretsManagerClient, "send"> = tracedAwsClient(new SecretsManagerClient({})),
): Promise<"created" | "exists" | "revoked"> {
  const output = await secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const key = output.SecretString?.trim();
  if (!key) throw new Error(`secret ${secretArn} holds no first admin key`);
  const db = new Database({ connectionString: databaseUrl, max: 1 });
  try {
    return await ensureBootstrapKey(
      new PostgresApiKeyStore(db),
      key,
      undefined,
      "first admin key (stack secret)",
    );
  } finally {
    await db.close();
  }
}

/**
 * Lambda entry for the deploy-time migration custom resource (custom-resources Provider).
 * Create and Update apply pending migrations, then register the first admin key; Delete keeps
 * the data.
 */
export const handler = lambdaHandler("migrate", async (event: CloudFormationCustomResourceEvent) => {
  if (event.RequestType === "Delete") return { PhysicalResourceId: event.PhysicalResourceId };
  const databaseUrl = await cloudDatabaseUrl();
  const result = await migrate(databaseUrl);
  const firstKeyArn = process.env.FIRST_ADMIN_KEY_SECRET_ARN;
  const firstKey = firstKeyArn ? await registerFirstAdminKey(databaseUrl, firstKeyArn) : "not configured";
  return {
    PhysicalResourceId: "tme-database-migrations",
    Data: {
      Applied: result.applied.join(","),
      AlreadyApplied: String(result.alreadyApplied),
      FirstAdminKey: firstKey,
    },
  };
});
