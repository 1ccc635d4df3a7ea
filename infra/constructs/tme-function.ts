import path from "node:path";
import { fileURLToPath } from "node:url";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { NagSuppressions } from "cdk-nag";
import type { Construct } from "constructs";
import {
  type CloudEnvName,
  FUNCTION_ENVIRONMENT,
  type TmeFunctionName,
} from "../../functions/config/cloud-environment.js";
import { NETWORK_SUBNETS } from "./network-and-database.js";

/** The repository root: the bundler's project root, and where migrations/ and configurations/ live. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Where the YAML configuration and the SQL migrations land inside every bundle. */
export const BUNDLE_CONFIG_DIR = "/var/task/configurations";
export const BUNDLE_MIGRATIONS_DIR = "/var/task/migrations";

/**
 * Largest index.mjs a bundle may be (1 MB): the bundles test fails above it and every synth
 * prints each one's size. Cold starts grow with what Node has to parse.
 */
export const MAX_BUNDLE_BYTES = 1_000_000;

/**
 * Packages the bundles replace with a smaller stand-in (infra/bundling/): a Lambda needs
 * neither the SDK's full credential chain nor a YAML parser. Each file says why.
 */
const BUNDLE_ALIASES: Record<string, string> = {
  "@aws-sdk/credential-provider-node": path.join(REPO_ROOT, "infra/bundling/env-credentials.ts"),
  yaml: path.join(REPO_ROOT, "infra/bundling/yaml-as-json.ts"),
  "mvdan-sh": path.join(REPO_ROOT, "infra/bundling/no-shell-parser.ts"),
};

/** Lambda's CA bundle, with the RDS certificate authorities among Amazon's. */
export const LAMBDA_CA_BUNDLE = "/var/runtime/ca-cert.pem";

// esbuild emits ESM, but pg and a few others are CommonJS that call require(); this gives
// them one.
const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module';const require = createRequire(import.meta.url);";

export interface TmeFunctionProps {
  /** Which handler: bundles functions/handlers/<name>.ts and picks its environment contract. */
  readonly name: TmeFunctionName;
  readonly description: string;
  /** The VPC and security group to run in; a function that reaches no database has none. */
  readonly network?: { vpc: ec2.IVpc; securityGroup: ec2.ISecurityGroup };
  readonly timeout?: Duration;
  readonly memorySize?: number;
  readonly reservedConcurrentExecutions?: number;
  /** Copy configurations/*.yaml into the bundle (default true: every handler loads the configuration). */
  readonly includeConfig?: boolean;
  /** Copy migrations/*.sql into the bundle (only the migrate function needs them). */
  readonly includeMigrations?: boolean;
  /** Files the code reads at run time beside the bundle, which esbuild cannot see. */
  readonly extraFiles?: FileCopy[];
}

/** Files copied into the bundle after esbuild: `from` and `to` are directories. */
export interface FileCopy {
  /** Relative to the repository root. */
  readonly from: string;
  /** Names or shell globs inside `from`. */
  readonly files: readonly string[];
  /** Relative to the bundle root (/var/task). */
  readonly to: string;
}

/**
 * A TME handler as a Lambda function, with the defaults every one of them shares pinned in
 * one place: Node.js 22 on arm64, an ESM bundle with source maps, X-Ray tracing, its own
 * log group, the VPC's private subnets, and the configuration files copied in.
 */
export class TmeFunction extends NodejsFunction {
  readonly tmeName: TmeFunctionName;

  constructor(scope: Construct, id: string, props: TmeFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const copies: FileCopy[] = [];
    if (props.includeMigrations) {
      copies.push({ from: "migrations", files: ["*.sql"], to: path.basename(BUNDLE_MIGRATIONS_DIR) });
    }
    copies.push(...(props.extraFiles ?? []));

    super(scope, id, {
      description: props.description,
      entry: path.join(REPO_ROOT, "functions", "handlers", `${props.name}.ts`),
      handler: "handler",
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, "package-lock.json"),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(30),
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      // Stack traces point into the TypeScript sources instead of the minified bundle.
      // NODE_EXTRA_CA_CERTS: Lambda's CA bundle holds the RDS CAs, which Node 20+ runtimes no
      // longer load by default; the RDS Proxy's ACM certificate chains to Node's own roots.
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        NODE_EXTRA_CA_CERTS: LAMBDA_CA_BUNDLE,
      },
      ...(props.network
        ? {
            vpc: props.network.vpc,
            vpcSubnets: { subnetGroupName: NETWORK_SUBNETS.app },
            securityGroups: [props.network.securityGroup],
          }
        : {}),
      bundling: {
        format: OutputFormat.ESM,
        target: "node22",
        mainFields: ["module", "main"],
        banner: ESM_REQUIRE_BANNER,
        minify: true,
        // keepNames would keep class and function names through minification at 50 KB a bundle,
        // which the api cannot spare under MAX_BUNDLE_BYTES. Nothing of TME's decides on a name
        // (errors carry `code`; the SDK's exceptions set `name` themselves); what changes is the
        // `type` of a logged error, and stack frames still map to the sources (source maps).
        keepNames: false,
        sourceMap: true,
        sourcesContent: false,
        // Everything is bundled, the AWS SDK too, so the versions in package-lock.json are
        // the ones that run. pg-native is pg's optional native driver, which TME never asks for.
        externalModules: ["pg-native"],
        esbuildArgs: {
          "--alias": Object.entries(BUNDLE_ALIASES).map(([name, file]) => `${name}=${file}`),
        },
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir: string, outputDir: string) => [
            ...(props.includeConfig === false
              ? []
              : [
                  `node "${inputDir}/infra/bundling/config-as-json.mjs" "${inputDir}/configurations" "${outputDir}/${path.basename(BUNDLE_CONFIG_DIR)}"`,
                ]),
            ...copies.flatMap(({ from, files, to }) => {
              const target = `${outputDir}/${to}`;
              const sources = files.map((file) => `"${inputDir}/${from}/"${file}`).join(" ");
              return [`mkdir -p "${target}"`, `cp ${sources} "${target}/"`];
            }),
            // One line per function in every synth's output (on stderr, with CDK's own lines).
            `wc -c < "${outputDir}/index.mjs" | awk '{ printf "TME bundle %-20s %8.1f KB of %d KB%s\\n", "${props.name}", $1 / 1000, ${MAX_BUNDLE_BYTES / 1000}, ($1 > ${MAX_BUNDLE_BYTES} ? "  OVER THE LIMIT" : "") }' >&2`,
          ],
        },
      },
    });
    this.tmeName = props.name;

    NagSuppressions.addResourceSuppressions(
      this,
      [
        {
          id: "AwsSolutions-IAM4",
          reason:
            "AWS's own minimal policies for a VPC Lambda: writing its logs and managing its ENIs; nothing TME-specific is granted through them.",
          appliesTo: [
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
          ],
        },
        {
          id: "AwsSolutions-IAM5",
          reason: "X-Ray's PutTraceSegments and PutTelemetryRecords accept no resource narrower than *.",
          appliesTo: ["Resource::*"],
        },
        {
          id: "AwsSolutions-L1",
          reason:
            "Pinned to Node.js 22 (LTS) on purpose: the code is built and tested for it (target node22); moving to a newer runtime is a tested change, not an automatic one.",
        },
      ],
      true,
    );
  }

  /** Sets exactly the variables the contract in cloud-environment.ts promises this function. */
  applyEnvironment(values: Readonly<Record<CloudEnvName, string>>): void {
    for (const name of FUNCTION_ENVIRONMENT[this.tmeName]) this.addEnvironment(name, values[name]);
  }
}
