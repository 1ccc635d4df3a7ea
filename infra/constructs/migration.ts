import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { CustomResource, Duration, RemovalPolicy } from "aws-cdk-lib";
import * as logs from "aws-cdk-lib/aws-logs";
import * as cr from "aws-cdk-lib/custom-resources";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import type { NetworkAndDatabase } from "./network-and-database.js";
import { REPO_ROOT, TmeFunction } from "./tme-function.js";

export interface MigrationProps {
  readonly data: NetworkAndDatabase;
  /** Where the SQL files are read from to fingerprint them; default migrations/ of the repo. */
  readonly migrationsDir?: string;
}

/** A fingerprint of every migration file, names and contents. */
export function migrationsFingerprint(dir: string): string {
  const hash = createHash("sha256");
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    hash
      .update(file)
      .update("\0")
      .update(readFileSync(path.join(dir, file)))
      .update("\0");
  }
  return hash.digest("hex");
}

/**
 * Applies the SQL migrations during `cdk deploy`, through a custom resource whose handler
 * is the migrate function. The resource carries the fingerprint of migrations/ and of the
 * migrate bundle, so CloudFormation calls it again whenever either changes (the migrator
 * is idempotent, so an extra call is harmless; a fingerprint keeps synth deterministic,
 * where a timestamp would make every `cdk diff` show a change). A failed migration fails
 * the deploy and CloudFormation rolls back.
 */
export class Migration extends Construct {
  readonly handler: TmeFunction;
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: MigrationProps) {
    super(scope, id);
    const { data } = props;

    this.handler = new TmeFunction(this, "Handler", {
      name: "migrate",
      description: "TME migrate: applies migrations/*.sql in order (custom resource handler)",
      network: { vpc: data.vpc, securityGroup: data.lambdaSecurityGroup },
      timeout: Duration.minutes(10),
      includeMigrations: true,
    });

    const provider = new cr.Provider(this, "Provider", {
      onEventHandler: this.handler,
      logGroup: new logs.LogGroup(this, "ProviderLogs", {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });

    this.resource = new CustomResource(this, "Resource", {
      serviceToken: provider.serviceToken,
      resourceType: "Custom::TmeMigrations",
      properties: {
        MigrationsFingerprint: migrationsFingerprint(
          props.migrationsDir ?? path.join(REPO_ROOT, "migrations"),
        ),
        HandlerVersion: this.handler.currentVersion.version,
      },
    });
    // The migrate function reaches the database through the proxy, and Secrets Manager
    // through the NAT: both must exist before the first call.
    this.resource.node.addDependency(data.proxy, data.instance, data.vpc);

    NagSuppressions.addResourceSuppressions(
      provider,
      [
        {
          id: "AwsSolutions-IAM4",
          reason:
            "The custom-resources Provider framework function uses AWSLambdaBasicExecutionRole for its own logs; CDK owns that role.",
          appliesTo: [
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
          ],
        },
        {
          id: "AwsSolutions-IAM5",
          reason:
            "CDK grants the Provider framework function lambda:InvokeFunction on the migrate function and its versions (<arn>:*).",
        },
        {
          id: "AwsSolutions-L1",
          reason: "The Provider framework function's runtime is chosen by aws-cdk-lib, not by TME.",
        },
      ],
      true,
    );
  }
}
