import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from "@aws-sdk/client-eventbridge";
import { CreateScheduleGroupCommand, GetScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { APIGatewayProxyEventV2, SQSEvent } from "aws-lambda";
import pg from "pg";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TmeFunctionName } from "../../functions/config/cloud-environment.js";
import { EmbeddedPostgres } from "../../functions/local/embedded-postgres.js";
import { LambdaHost } from "../helpers/lambda-host.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { startTlsPgProxy, type TlsPgProxy } from "../helpers/tls-pg-proxy.js";
import { waitFor } from "../helpers/wait.js";
import { type BuiltBundles, synthesizeWithBundles } from "../infra/synth.js";

/**
 * The built Lambda bundles end to end, offline: each runs in a process of its own (a warm
 * container) with the variables the synthesized stack gives it, against moto_server for SQS,
 * EventBridge, Scheduler and Secrets Manager, and PostgreSQL behind a TLS proxy that stands
 * in for RDS Proxy (sslmode=verify-full against a certificate for "localhost"). Where the
 * stack has a resource, moto has one made the same way, and the variable names it.
 */
const moto = spawnSync("python3", ["-c", "import moto.server, flask"], { stdio: "ignore" }).status === 0;
const openssl = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0;
if (!moto || !openssl) {
  console.log(
    `[cloud bundles e2e] skipped: needs ${moto ? "" : "moto_server (pip install 'moto[server]') "}${openssl ? "" : "openssl"}`,
  );
}

const REGION = "us-east-1";
const ACCOUNT = "123456789012";
/** Cloud values a stand-in replaces: the stack's /var/task paths, the proxy's port and database. */
const BUNDLE_PATH_VARIABLES = ["TME_CONFIG_DIR", "TME_MIGRATIONS_DIR"] as const;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A CA and a server certificate for "localhost" signed by it, made with openssl. */
function certificates(dir: string): { ca: string; key: string; cert: string } {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=TME test CA",
  );
  run(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  );
  writeFileSync(path.join(dir, "san.ext"), "subjectAltName=DNS:localhost\n");
  run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "san.ext",
  );
  return {
    ca: path.join(dir, "ca.pem"),
    key: readFileSync(path.join(dir, "server.key"), "utf8"),
    cert: readFileSync(path.join(dir, "server.pem"), "utf8"),
  };
}

function apiEvent(method: string, rawPath: string, key: string, body?: unknown): APIGatewayProxyEventV2 {
  const now = new Date();
  const text = body === undefined ? undefined : JSON.stringify(body);
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString: "",
    headers: {
      authorization: `Bearer ${key}`,
      host: "abc123.execute-api.us-east-1.amazonaws.com",
      ...(text ? { "content-type": "application/json" } : {}),
    },
    requestContext: {
      accountId: ACCOUNT,
      apiId: "abc123",
      domainName: "abc123.execute-api.us-east-1.amazonaws.com",
      domainPrefix: "abc123",
      http: { method, path: rawPath, protocol: "HTTP/1.1", sourceIp: "198.51.100.7", userAgent: "e2e" },
      requestId: randomBytes(8).toString("hex"),
      routeKey: "$default",
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    body: text ? Buffer.from(text).toString("base64") : undefined,
    isBase64Encoded: text !== undefined,
  };
}

/** Messages as a Lambda event source mapping hands them to the function. */
function sqsEvent(messages: Message[], queueArn: string): SQSEvent {
  return {
    Records: messages.map((m) => ({
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body!,
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: String(Date.now()),
        SenderId: ACCOUNT,
        ApproximateFirstReceiveTimestamp: String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? "",
      eventSource: "aws:sqs",
      eventSourceARN: queueArn,
      awsRegion: REGION,
    })),
  };
}

/** The JSON lines a function wrote to stdout (its log in CloudWatch). */
function jsonLines(host: LambdaHost): Array<Record<string, any>> {
  return host.log.flatMap((line) => {
    try {
      const value = JSON.parse(line);
      return value && typeof value === "object" ? [value] : [];
    } catch {
      return [];
    }
  });
}

/** Names of the metrics in a function's EMF lines (CloudWatch's embedded metric format). */
function emfMetrics(host: LambdaHost): string[] {
  return jsonLines(host)
    .filter((l) => l._aws?.CloudWatchMetrics)
    .flatMap((l) =>
      l._aws.CloudWatchMetrics.flatMap((m: { Metrics: Array<{ Name: string }> }) =>
        m.Metrics.map((x) => x.Name),
      ),
    );
}

describe.skipIf(!moto || !openssl)("the built Lambda bundles with the stack's environment", () => {
  let dir: string;
  let built: BuiltBundles;
  let motoProcess: ChildProcess;
  let database: EmbeddedPostgres;
  let proxy: TlsPgProxy;
  let ok: Receiver;
  let flaky: Receiver;
  const hosts = {} as Record<TmeFunctionName, LambdaHost>;
  const queues = {} as Record<
    "high" | "normal" | "low" | "webhooks" | "scheduleDlq",
    { url: string; arn: string }
  >;
  let sqs: SQSClient;
  let secrets: SecretsManagerClient;
  let scheduler: SchedulerClient;
  let dbSecretArn: string;
  let firstKeyArn: string;
  let adminKey: string;
  const awsEnv: Record<string, string> = {};
  let standIns: Record<string, string>;

  /**
   * Exactly the variables the synthesized stack sets on `fn`: literals as they are, references
   * to resources replaced by their stand-ins (and /var/task by the bundle's directory).
   */
  const envFor = (fn: TmeFunctionName, overrides: Record<string, string> = {}): Record<string, string> => {
    const resources = built.template.toJSON().Resources as Record<string, any>;
    const stackEnv = resources[built.functionIds[fn]].Properties.Environment.Variables as Record<
      string,
      unknown
    >;
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...awsEnv };
    for (const [name, value] of Object.entries(stackEnv)) {
      if (name in standIns) env[name] = standIns[name]!;
      else if ((BUNDLE_PATH_VARIABLES as readonly string[]).includes(name))
        env[name] = String(value).replace("/var/task", built.bundles[fn]);
      else if (typeof value === "string") env[name] = value;
      else throw new Error(`${fn}: ${name} is a stack reference the test has no stand-in for`);
    }
    // The receivers are on 127.0.0.1, which the SSRF guard refuses in production.
    if (fn !== "worker" && fn !== "migrate") env.ALLOW_PRIVATE_CALLBACKS = "true";
    return { ...env, ...overrides };
  };

  const admin = async <R extends pg.QueryResultRow>(sql: string, values: unknown[] = []) => {
    const client = new pg.Client({ connectionString: database.connectionString });
    await client.connect();
    try {
      return (await client.query<R>(sql, values)).rows;
    } finally {
      await client.end();
    }
  };

  /** Takes what is in a queue now (long polling briefly), deleting it, as the event source does. */
  const drain = async (queue: { url: string }, atLeast = 1): Promise<Message[]> => {
    const taken: Message[] = [];
    await waitFor(
      `${atLeast} message(s) on ${queue.url}`,
      async () => {
        const out = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queue.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
        );
        for (const m of out.Messages ?? []) {
          taken.push(m);
          await sqs.send(new DeleteMessageCommand({ QueueUrl: queue.url, ReceiptHandle: m.ReceiptHandle! }));
        }
        return taken.length >= atLeast ? taken : undefined;
      },
      15_000,
    );
    return taken;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "tme-cloud-e2e-"));
    built = synthesizeWithBundles();

    const motoPort = await freePort();
    motoProcess = spawn("python3", ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(motoPort)], {
      stdio: "ignore",
    });
    Object.assign(awsEnv, {
      AWS_ENDPOINT_URL: `http://127.0.0.1:${motoPort}`,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
    });
    for (const [k, v] of Object.entries(awsEnv)) process.env[k] = v;
    const clientConfig = { region: REGION, endpoint: awsEnv.AWS_ENDPOINT_URL };
    sqs = new SQSClient(clientConfig);
    secrets = new SecretsManagerClient(clientConfig);
    scheduler = new SchedulerClient(clientConfig);
    const events = new EventBridgeClient(clientConfig);
    await waitFor(
      "moto_server",
      () =>
        fetch(`${awsEnv.AWS_ENDPOINT_URL}/moto-api/`).then(
          () => true,
          () => undefined,
        ),
      30_000,
      200,
    );

    database = new EmbeddedPostgres({ dataDir: path.join(dir, "pg"), database: "postgres" });
    await database.start();
    const tls = certificates(dir);
    proxy = await startTlsPgProxy({
      backendPort: Number(new URL(database.connectionString).port),
      key: tls.key,
      cert: tls.cert,
    });

    for (const name of ["high", "normal", "low", "webhooks", "scheduleDlq"] as const) {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `tme-${name}` }));
      const attributes = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }),
      );
      queues[name] = { url: QueueUrl!, arn: attributes.Attributes!.QueueArn! };
    }
    // The bus and its rule as infra/constructs/event-fanout.ts makes them: source tme -> queue.
    await events.send(new CreateEventBusCommand({ Name: "tme-events" }));
    await events.send(
      new PutRuleCommand({
        Name: "tme-to-webhooks",
        EventBusName: "tme-events",
        EventPattern: '{"source":["tme"]}',
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: "tme-to-webhooks",
        EventBusName: "tme-events",
        Targets: [{ Id: "webhooks", Arn: queues.webhooks.arn }],
      }),
    );
    await scheduler.send(new CreateScheduleGroupCommand({ Name: "tme-user-schedules" }));

    const secret = async (name: string, value: string) =>
      (await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }))).ARN!;
    dbSecretArn = await secret(
      "tme-db",
      JSON.stringify({
        username: "postgres",
        password: database.password,
        host: "instance.internal",
        port: 5432,
      }),
    );
    // The forms the stack generates (see its GenerateSecretString): 64 hex, 48 letters and digits.
    const encryptionKeyArn = await secret("tme-key", randomBytes(32).toString("hex"));
    firstKeyArn = await secret("tme-first-key", randomBytes(36).toString("base64url").replace(/[-_]/g, "x"));

    ok = await startReceiver();
    flaky = await startReceiver((_req, res, index) => {
      res.statusCode = index === 0 ? 500 : 200;
      res.end(index === 0 ? "not yet" : "ok");
    });

    standIns = {
      DATABASE_SECRET_ARN: dbSecretArn,
      DATABASE_HOST: "localhost",
      DATABASE_PORT: String(proxy.port),
      DATABASE_NAME: "postgres",
      // moto's own URLs: the SDK sends to a queue URL's host, whatever AWS_ENDPOINT_URL says.
      TASK_QUEUE_URL_HIGH: queues.high.url,
      TASK_QUEUE_URL_NORMAL: queues.normal.url,
      TASK_QUEUE_URL_LOW: queues.low.url,
      EVENT_BUS_NAME: "tme-events",
      SCHEDULE_GROUP_NAME: "tme-user-schedules",
      SCHEDULE_TARGET_ARN: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:tme-schedule-target`,
      SCHEDULER_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/tme-scheduler`,
      SCHEDULE_DEAD_LETTER_ARN: queues.scheduleDlq.arn,
      ENCRYPTION_KEY_SECRET_ARN: encryptionKeyArn,
      FIRST_ADMIN_KEY_SECRET_ARN: firstKeyArn,
      // The test's CA instead of Lambda's /var/runtime/ca-cert.pem.
      NODE_EXTRA_CA_CERTS: tls.ca,
    };
    for (const fn of built.stack.functions) {
      hosts[fn.tmeName] = new LambdaHost(`tme-${fn.tmeName}`, built.bundles[fn.tmeName], envFor(fn.tmeName));
    }
  }, 240_000);

  afterAll(async () => {
    // For a failure's post-mortem: every function's log, where the caller asked for it.
    if (process.env.TME_E2E_LOG_DIR) {
      for (const [name, host] of Object.entries(hosts)) {
        writeFileSync(path.join(process.env.TME_E2E_LOG_DIR, `${name}.log`), host.log.join("\n"));
      }
    }
    await Promise.all(Object.values(hosts).map((h) => h.stop()));
    await ok?.close();
    await flaky?.close();
    await proxy?.close();
    await database?.stop();
    if (motoProcess && motoProcess.exitCode === null) {
      const exited = new Promise((resolve) => motoProcess.once("exit", resolve));
      motoProcess.kill("SIGTERM");
      await exited;
    }
    built?.remove();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("migrates at deploy and registers the first admin key from its secret", async () => {
    const result = await hosts.migrate.invoke({
      RequestType: "Create",
      ResourceType: "Custom::TmeMigrations",
    });
    expect(result.Data.FirstAdminKey).toBe("created");
    expect(result.Data.Applied.split(",").length).toBeGreaterThan(3);
    adminKey = (await secrets.send(new GetSecretValueCommand({ SecretId: firstKeyArn }))).SecretString!;
    const keys = await hosts.api.invoke(apiEvent("GET", "/keys", adminKey));
    expect(keys.statusCode).toBe(200);
  });

  let signingSecret: string;
  let taskId: string;

  it("creates a task through the api, which the worker runs from SQS; its event reaches a signed webhook", async () => {
    const hmac = await hosts.api.invoke(
      apiEvent("POST", "/events", adminKey, {
        event_types: ["task.succeeded"],
        callback_url: `${ok.url}/hooks`,
        auth: { type: "hmac" },
      }),
    );
    expect(hmac.statusCode, hmac.body).toBe(201);
    signingSecret = JSON.parse(hmac.body).signing_secret;
    const bearer = await hosts.api.invoke(
      apiEvent("POST", "/events", adminKey, {
        event_types: ["task.succeeded"],
        callback_url: `${flaky.url}/hooks`,
        auth: { type: "bearer", token: "flaky-receiver-token" },
      }),
    );
    expect(bearer.statusCode, bearer.body).toBe(201);

    const created = await hosts.api.invoke(
      apiEvent("POST", "/task/create", adminKey, { name: "noop_e2e", priority: 8 }),
    );
    expect(created.statusCode, created.body).toBe(201);
    taskId = JSON.parse(created.body).task_id;

    // The api relayed the queue signal before answering: the message is on the high queue now.
    const messages = await drain(queues.high);
    expect(JSON.parse(messages[0]!.Body!)).toMatchObject({ task_id: taskId, attempt: 1 });
    const worked = await hosts.worker.invoke(sqsEvent(messages, queues.high.arn));
    expect(worked).toEqual({ batchItemFailures: [] });

    // The worker relayed task.* to the bus; the rule put them on the webhook queue.
    const busMessages = await drain(queues.webhooks, 3);
    const types = busMessages.map((m) => JSON.parse(m.Body!)["detail-type"]);
    expect(types).toEqual(expect.arrayContaining(["task.created", "task.started", "task.succeeded"]));
    const dispatched = await hosts["webhook-dispatcher"].invoke(sqsEvent(busMessages, queues.webhooks.arn));
    expect(dispatched).toEqual({ batchItemFailures: [] });

    const [delivery] = await ok.waitFor(1, 10_000);
    const body = JSON.parse(delivery!.body);
    expect(body).toMatchObject({
      type: "task.succeeded",
      data: { task: { id: taskId, status: "succeeded" } },
    });
    // Verifies (throws otherwise) with the secret handed out once, sealed with the stack's key.
    new Webhook(signingSecret).verify(delivery!.body, {
      "webhook-id": String(delivery!.headers["webhook-id"]),
      "webhook-timestamp": String(delivery!.headers["webhook-timestamp"]),
      "webhook-signature": String(delivery!.headers["webhook-signature"]),
    });
    const [refused] = await flaky.waitFor(1, 10_000);
    expect(refused!.headers.authorization).toBe("Bearer flaky-receiver-token");

    // Telemetry: the EMF metrics of each step.
    expect(emfMetrics(hosts.api)).toContain("TasksCreated");
    expect(emfMetrics(hosts.worker)).toEqual(
      expect.arrayContaining(["AttemptsStarted", "QueueLatency", "TasksSucceeded", "AttemptDuration"]),
    );
    expect(emfMetrics(hosts["webhook-dispatcher"])).toEqual(
      expect.arrayContaining(["WebhookDeliveriesSucceeded", "WebhookDeliveriesFailed", "WebhookLatency"]),
    );
    // The first invocation of a container says so, once.
    const coldStarts = jsonLines(hosts.worker).filter(
      (l) => l._aws && JSON.stringify(l).includes("ColdStart"),
    );
    expect(coldStarts).toHaveLength(1);
  });

  it("retries the refused webhook from the reaper, opening its credentials with the stack's key", async () => {
    // The retry's backoff (about 5 s) has passed, as far as the reaper can tell.
    const due = await admin(
      "UPDATE deliveries SET next_attempt_at = now() WHERE status = 'pending' AND trigger = 'retry' RETURNING id",
    );
    expect(due).toHaveLength(1);
    const report = await hosts.reaper.invoke({ source: "aws.events", "detail-type": "Scheduled Event" });
    expect(report.webhookAttempts).toBe(1);
    // Its pass logged with the invocation's fields, its heartbeat and the outbox gauges the alarms read.
    expect(jsonLines(hosts.reaper).find((l) => l.msg === "reaper pass")).toMatchObject({
      function_name: "tme-reaper",
      function_request_id: expect.any(String),
      cold_start: true,
      service: "tme",
    });
    expect(emfMetrics(hosts.reaper)).toEqual(
      expect.arrayContaining(["ReaperRuns", "OutboxBacklog", "OutboxOldestAgeSeconds", "SchedulesLate"]),
    );
    const [, retried] = await flaky.waitFor(2, 10_000);
    expect(retried!.headers.authorization).toBe("Bearer flaky-receiver-token");
    const states = await admin<{ status: string }>(
      "SELECT status FROM deliveries ORDER BY created_at, attempt",
    );
    expect(states.map((s) => s.status).sort()).toEqual(["retrying", "succeeded", "succeeded"].sort());
  });

  it("keeps serving after the database secret is rotated under the warm containers", async () => {
    const rotated = randomBytes(24).toString("base64url");
    await admin(`ALTER USER postgres PASSWORD '${rotated}'`);
    database.password = rotated;
    await secrets.send(
      new PutSecretValueCommand({
        SecretId: dbSecretArn,
        SecretString: JSON.stringify({
          username: "postgres",
          password: rotated,
          host: "instance.internal",
          port: 5432,
        }),
      }),
    );
    // The warm pools' connections end, so the next ones meet the new password. A request may
    // still find a connection whose end its process has not seen yet (a 503); then it recovers,
    // which a container holding the old password never would.
    proxy.dropAll();
    const task = await waitFor(
      "the warm api to answer after the rotation",
      async () => {
        const answer = await hosts.api.invoke(apiEvent("GET", `/task/${taskId}`, adminKey));
        if (answer.statusCode !== 503) return answer;
      },
      15_000,
      200,
    );
    expect(task.statusCode, task.body).toBe(200);
    expect(JSON.parse(task.body).status).toBe("succeeded");
    // The other warm containers too: the worker-side reaper reads and writes after the rotation.
    const report = await waitFor(
      "the warm reaper after the rotation",
      () => hosts.reaper.invoke({ source: "aws.events" }).catch(() => undefined),
      15_000,
      200,
    );
    expect(report.reaped).toBeDefined();
  });

  it("creates the schedule in Scheduler with retries and a DLQ; schedule-target fires it and relays the signal", async () => {
    const created = await hosts.api.invoke(
      apiEvent("POST", "/schedule", adminKey, { name: "noop_every_minute", interval: 60 }),
    );
    expect(created.statusCode, created.body).toBe(201);
    const scheduleId = JSON.parse(created.body).schedule_id;
    const remote = await scheduler.send(
      new GetScheduleCommand({ Name: scheduleId, GroupName: "tme-user-schedules" }),
    );
    expect(remote.ScheduleExpression).toBe("rate(1 minute)");
    expect(remote.Target).toMatchObject({
      RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 600 },
      DeadLetterConfig: { Arn: queues.scheduleDlq.arn },
    });

    // A minute later, as Scheduler invokes the target: its Input with the keywords filled in.
    const [due] = await admin<{ next_run_at: Date }>(
      "UPDATE schedules SET next_run_at = now() - interval '1 second' WHERE id = $1 RETURNING next_run_at",
      [scheduleId],
    );
    const next_run_at = due!.next_run_at;
    const input = remote
      .Target!.Input!.replace("<aws.scheduler.scheduled-time>", next_run_at.toISOString())
      .replace("<aws.scheduler.execution-id>", "e2e-execution");
    const fired = await hosts["schedule-target"].invoke(JSON.parse(input));
    expect(fired).toMatchObject({ schedule_id: scheduleId, outcome: "fired" });
    // Relayed before returning: the worker's message is there without a reaper pass.
    const messages = await drain(queues.normal);
    expect(JSON.parse(messages[0]!.Body!)).toMatchObject({ task_id: fired.task_id });
    expect(await hosts.worker.invoke(sqsEvent(messages, queues.normal.arn))).toEqual({
      batchItemFailures: [],
    });
    const task = await hosts.api.invoke(apiEvent("GET", `/task/${fired.task_id}`, adminKey));
    expect(JSON.parse(task.body)).toMatchObject({ status: "succeeded", schedule_id: scheduleId });
  });

  it("refuses a database whose certificate does not name the host (verify-full)", async () => {
    // The same CA, the same proxy, but reached as 127.0.0.1: the certificate names localhost.
    const host = new LambdaHost(
      "tme-api-wrong-host",
      built.bundles.api,
      envFor("api", { DATABASE_HOST: "127.0.0.1" }),
    );
    try {
      const answer = await host.invoke(apiEvent("GET", `/task/${taskId}`, adminKey));
      expect(answer.statusCode).toBe(503);
      const log = host.log.join("\n");
      expect(log, log).toMatch(/Hostname\/IP does not match certificate|ERR_TLS_CERT_ALTNAME_INVALID/);
    } finally {
      await host.stop();
    }
  });
});
