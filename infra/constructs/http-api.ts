import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as apigw from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as logs from "aws-cdk-lib/aws-logs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import type { NetworkAndDatabase } from "./network-and-database.js";
import { TmeFunction } from "./tme-function.js";

export interface HttpApiProps {
  readonly data: NetworkAndDatabase;
  /** Steady-state requests per second across the API. */
  readonly rateLimit: number;
  readonly burstLimit: number;
}

/**
 * The HTTP API: every path and method goes to the one api function, which routes itself
 * (the same router serves the local runtime), so the API Gateway side stays a single
 * $default route.
 */
export class HttpApi extends Construct {
  readonly api: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly handler: TmeFunction;

  constructor(scope: Construct, id: string, props: HttpApiProps) {
    super(scope, id);

    this.handler = new TmeFunction(this, "Handler", {
      name: "api",
      description: "TME HTTP API",
      vpc: props.data.vpc,
      securityGroup: props.data.lambdaSecurityGroup,
      // API Gateway gives up after 30 s; a longer function timeout would only run on unseen.
      timeout: Duration.seconds(29),
      memorySize: 1024,
      // GET /docs serves Swagger UI's files, which the api finds with
      // require.resolve("swagger-ui-dist/package.json") when its routes are built: without
      // them beside the bundle the function fails at import.
      extraFiles: [
        {
          from: "node_modules/swagger-ui-dist",
          files: [
            "package.json",
            "LICENSE",
            "swagger-ui.css",
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
          ],
          to: "node_modules/swagger-ui-dist",
        },
      ],
    });

    this.api = new apigw.HttpApi(this, "Api", {
      description: "TME Task Management Engine",
      createDefaultStage: false,
      defaultIntegration: new HttpLambdaIntegration("Handler", this.handler, {
        payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
      }),
    });

    const accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = this.api.addStage("DefaultStage", {
      stageName: "$default",
      autoDeploy: true,
      throttle: { rateLimit: props.rateLimit, burstLimit: props.burstLimit },
      accessLogSettings: { destination: new apigw.LogGroupLogDestination(accessLogs) },
      detailedMetricsEnabled: false,
    });

    NagSuppressions.addResourceSuppressions(
      this.api,
      [
        {
          id: "AwsSolutions-APIG4",
          reason:
            "TME authenticates in the api function with hashed, scoped, per-namespace API keys (Authorization: Bearer); GET /health and the dashboard shell are public by contract (API.md).",
        },
      ],
      true,
    );
  }

  /** The URL clients call. */
  get url(): string {
    return this.stage.url;
  }
}
