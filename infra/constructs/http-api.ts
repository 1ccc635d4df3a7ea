import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as apigw from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as logs from "aws-cdk-lib/aws-logs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import { BUNDLED_DASHBOARD_DIR } from "../../functions/handlers/dashboard.js";
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
 * (the same router serves the local runtime), through the $default route; only the
 * dashboard's static files (GET /dashboard and GET /dashboard/{proxy+}) go to a small
 * function of their own, which carries them, so the api bundle does not.
 */
export class HttpApi extends Construct {
  readonly api: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly handler: TmeFunction;
  /** Serves functions/dashboard/dist at /dashboard on the API's own origin. */
  readonly dashboard: TmeFunction;

  constructor(scope: Construct, id: string, props: HttpApiProps) {
    super(scope, id);

    this.handler = new TmeFunction(this, "Handler", {
      name: "api",
      description: "TME HTTP API",
      network: { vpc: props.data.vpc, securityGroup: props.data.lambdaSecurityGroup },
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

    this.dashboard = new TmeFunction(this, "Dashboard", {
      name: "dashboard",
      description: "TME dashboard: the static page and its assets",
      // No VPC, no database, no configuration: it reads its own files and nothing else.
      includeConfig: false,
      memorySize: 256,
      timeout: Duration.seconds(5),
      extraFiles: [
        { from: "functions/dashboard/dist", files: ["index.html"], to: BUNDLED_DASHBOARD_DIR },
        { from: "functions/dashboard/dist/assets", files: ["*"], to: `${BUNDLED_DASHBOARD_DIR}/assets` },
      ],
    });

    this.api = new apigw.HttpApi(this, "Api", {
      description: "TME Task Management Engine",
      createDefaultStage: false,
      defaultIntegration: new HttpLambdaIntegration("Handler", this.handler, {
        payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
      }),
    });

    const dashboard = new HttpLambdaIntegration("Dashboard", this.dashboard, {
      payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
    });
    for (const path of ["/dashboard", "/dashboard/{proxy+}"]) {
      this.api.addRoutes({ path, methods: [apigw.HttpMethod.GET], integration: dashboard });
    }

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
