import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { startTme, type TmeProcess } from "../helpers/tme-process.js";
import { waitFor } from "../helpers/wait.js";

// Secrets planted in the configuration and the environment of a real `tme start`, then a run
// that does a bit of everything (good calls, refused calls, failing tasks, webhooks with each
// kind of credential). None of them may appear in the log, the events, the audit rows, the
// stored webhook and task data, or any error body.
const SECRETS = {
  bootstrap: "planted-bootstrap-key-7f3a9c1e5b2d4f6a8c0e",
  encryption: "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
  databasePassword: "planted-db-password-5e6f7a8b",
  configPassword: "planted-yaml-password-9c8d7e6f",
  pluginSecret: "planted-plugin-secret-1a2b3c4d",
  bearer: "planted-bearer-token-4d3c2b1a",
  basic: "planted-basic-password-8e7f6a5b",
};

let database: TestDatabase;
let tme: TmeProcess;
let receiver: Receiver;
const scratch = mkdtempSync(path.join(os.tmpdir(), "tme-secrets-"));
const errorBodies: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  receiver = await startReceiver((_req, res) => res.end("ok"));
  const configDir = path.join(scratch, "config");
  cpSync("configurations", configDir, { recursive: true });
  const appConfig = path.join(configDir, "app_config.yaml");
  writeFileSync(
    appConfig,
    readFileSync(appConfig, "utf8").replace(
      "allow_private_callbacks: false",
      "allow_private_callbacks: true",
    ),
  );
  const dbConfig = path.join(configDir, "db_config.yaml");
  writeFileSync(
    dbConfig,
    `${readFileSync(dbConfig, "utf8")}\npassword: "${SECRETS.configPassword}"\n`.replace(
      /^password:.*\n(?=[\s\S]*^password:)/m,
      "",
    ),
  );
  // The test server trusts local connections, so a password in the URL is carried, not checked.
  const url = new URL(database.url);
  url.password = SECRETS.databasePassword;
  tme = await startTme({
    DATABASE_URL: url.toString(),
    TME_DATA_DIR: path.join(scratch, "data"),
    TME_CONFIG_DIR: configDir,
    TME_BOOTSTRAP_API_KEY: SECRETS.bootstrap,
    TME_ENCRYPTION_KEY: SECRETS.encryption,
    TME_SECRET_PLANTED: SECRETS.pluginSecret,
    LOG_LEVEL: "DEBUG",
  });
}, 90_000);
afterAll(async () => {
  await tme?.stop();
  await receiver?.close();
  await database?.drop();
  rmSync(scratch, { recursive: true, force: true });
});

async function call(method: string, route: string, body?: unknown, key: string | null = SECRETS.bootstrap) {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${tme.url}${route}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 400) errorBodies.push(text);
  return { status: res.status, text, json: () => JSON.parse(text) };
}

describe("no planted secret in any output", () => {
  it("a full run leaks none of them into logs, events, audit rows, stored data or error bodies", async () => {
    // Subscriptions with each kind of credential, and a delivery to each.
    for (const auth of [
      { type: "bearer", token: SECRETS.bearer },
      { type: "basic", username: "u", password: SECRETS.basic },
      { type: "hmac" },
    ]) {
      const sub = await call("POST", "/events", {
        event_types: ["task.*"],
        callback_url: `${receiver.url}/hook`,
        auth,
      });
      expect(sub.status, sub.text + tme.output().slice(-3000)).toBe(201);
    }
    const ok = await call("POST", "/task/create", { name: "echo_env", command: "env" });
    expect(ok.status).toBe(201);
    await call("POST", "/task/create", { name: "failing", command: "sh -c 'exit 3'", max_attempts: 1 });
    await call("POST", "/task/create", { name: "noop", params: { secret_name: "planted" } });
    // Refused calls of every kind: their bodies are collected.
    await call("GET", "/tasks", undefined, "tme_not_a_key");
    await call("GET", "/tasks", undefined, null);
    await call("POST", "/task/create", "{not json");
    await call("POST", "/task/create", { name: "x", unknown_field: SECRETS.bootstrap.slice(0, 3) });
    await call("POST", "/events", { event_types: ["task.*"], callback_url: "http://[::127.0.0.1]/" });
    await call("GET", "/task/tsk_missing");
    await call("POST", "/keys", { name: "k", scopes: ["root"] });
    const made = await call("POST", "/keys", { name: "made-in-run", scopes: ["tasks:read"] });
    const madeKey: string = made.json().key;
    await call("DELETE", `/keys/${made.json().id}`);
    await call("GET", "/tasks", undefined, madeKey);

    await waitFor(
      "the tasks to finish",
      async () => {
        const tasks = (await call("GET", "/tasks")).json() as Array<{ status: string }>;
        return tasks.every((t) => ["succeeded", "failed"].includes(t.status)) ? tasks : undefined;
      },
      30_000,
    );
    await receiver.waitFor(3, 30_000);
    // The env task ran and its output is kept: TME's own environment must not be in it.
    const envRuns = await database.db.rows<{ output_tail: string }>(
      "SELECT r.output_tail FROM task_runs r JOIN tasks t ON t.id = r.task_id WHERE t.name = 'echo_env'",
    );
    expect(envRuns[0]?.output_tail).toContain("PATH=");

    const dump = async (table: string) => JSON.stringify(await database.db.rows(`SELECT * FROM ${table}`));
    const places: Record<string, string> = {
      "the log (stdout and stderr, at DEBUG)": tme.output(),
      "error bodies": errorBodies.join("\n"),
    };
    for (const table of [
      "task_events",
      "webhook_events",
      "outbox",
      "audit_log",
      "deliveries",
      "idempotency_keys",
      "task_runs",
      "tasks",
      "subscriptions",
      "api_keys",
    ]) {
      places[`table ${table}`] = await dump(table);
    }
    expect(errorBodies.length).toBeGreaterThanOrEqual(8);
    expect(tme.output().length).toBeGreaterThan(1000);
    for (const [where, text] of Object.entries(places)) {
      for (const [name, secret] of Object.entries({ ...SECRETS, madeKey })) {
        expect(text.includes(secret), `${name} found in ${where}`).toBe(false);
      }
    }
    // The one place the credentials do go: the receiver, in the delivery's headers.
    const authorizations = receiver.requests.map((r) => r.headers.authorization ?? "");
    expect(authorizations).toContain(`Bearer ${SECRETS.bearer}`);
  }, 120_000);
});
