import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../functions/local/free-port.js";
import { readmeBlocks } from "../helpers/readme.js";
import { eventually } from "../helpers/receiver.js";
import { withTestApp } from "../helpers/test-app.js";
import { REPO_ROOT } from "../helpers/tme-process.js";

/** The ```js block of the README's "Events and webhooks" section: the signature-verifying receiver. */
function receiverSnippet(): string {
  const block = readmeBlocks("## Events and webhooks", "js", "docs/events-and-webhooks.md")[0];
  if (!block) throw new Error('README.md "Events and webhooks" has no ```js block');
  return block;
}

let dir: string;
let child: ChildProcess | undefined;
const t = withTestApp({ app: { allow_private_callbacks: true } });
beforeAll(async () => {
  // Inside the checkout (node_modules is ignored by git) so the snippet's import resolves.
  mkdirSync(path.join(REPO_ROOT, "node_modules", ".cache"), { recursive: true });
  dir = mkdtempSync(path.join(REPO_ROOT, "node_modules", ".cache", "readme-events-"));
});
afterAll(async () => {
  child?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe("README: Events and webhooks", () => {
  it("the receiver snippet accepts TME's signed delivery and refuses a forged one", async () => {
    const port = await freePort();
    const sub = await t.request("POST", "/events", {
      body: {
        event_types: ["task.*"],
        callback_url: `http://127.0.0.1:${port}/hooks/tme`,
        auth: { type: "hmac" },
      },
    });
    expect(sub.status).toBe(201);
    writeFileSync(path.join(dir, "receiver.mjs"), receiverSnippet());
    let stdout = "";
    child = spawn(process.execPath, ["receiver.mjs"], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", TME_SIGNING_SECRET: sub.body.signing_secret, PORT: String(port) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    child.stdout!.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    // Listening once a request gets any answer.
    await eventually(
      () =>
        fetch(`http://127.0.0.1:${port}/`, { method: "POST" }).then(
          () => true,
          () => false,
        ),
      10_000,
    );

    const ping = await t.request("POST", `/events/${sub.body.id}/test`);
    expect(ping.body).toMatchObject({ status: "succeeded", response_status: 204 });
    await eventually(async () => stdout.includes(`ping ${ping.body.event_id}`), 5000);

    const forged = await fetch(`http://127.0.0.1:${port}/hooks/tme`, {
      method: "POST",
      headers: {
        "webhook-id": "evt_forged",
        "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
        "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      },
      body: JSON.stringify({ id: "evt_forged", type: "task.failed" }),
    });
    expect(forged.status).toBe(401);
  });
});
