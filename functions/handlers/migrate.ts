import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { cloudDatabaseUrl } from "../adapters/aws/cloud-context.js";
import { migrate } from "../adapters/postgres/migrator.js";

/**
 * Lambda entry for the deploy-time migration custom resource (custom-resources Provider).
 * Create and Update apply pending migrations; Delete keeps the data.
 */
export const handler = async (event: CloudFormationCustomResourceEvent) => {
  if (event.RequestType === "Delete") return { PhysicalResourceId: event.PhysicalResourceId };
  const result = await migrate(await cloudDatabaseUrl());
  return {
    PhysicalResourceId: "tme-database-migrations",
    Data: { Applied: result.applied.join(","), AlreadyApplied: String(result.alreadyApplied) },
  };
};
