import { describe, expect, it } from "vitest";
import { withTestApp } from "../helpers/test-app.js";

// Finding 6: a key with only schedules:write ran a command (a schedule with a command, then
// /trigger). Running a command needs commands:run beside the route's own scope.
const t = withTestApp();

const forbiddenCommands = {
  code: "forbidden",
  details: [{ path: "scope", message: "requires commands:run" }],
};

async function commandTasks(): Promise<number> {
  const [row] = await t.app.db.rows<{ n: number }>(
    "SELECT count(*)::int AS n FROM tasks WHERE command IS NOT NULL",
  );
  return row!.n;
}

describe("commands:run", () => {
  it("a schedules:write key can neither create a schedule that runs a command nor trigger one", async () => {
    const before = await commandTasks();
    const scheduler = await t.keyWith(["schedules:write"]);
    const created = await t.request("POST", "/schedule", {
      key: scheduler,
      body: { name: "nightly", command: "id", interval: 3600 },
    });
    expect(created.status).toBe(403);
    expect(created.body.error).toMatchObject(forbiddenCommands);

    // A schedule an authorised key made: the schedules:write key may not fire it, nor retime it.
    const allowed = await t.keyWith(["schedules:write", "commands:run"]);
    const made = await t.request("POST", "/schedule", {
      key: allowed,
      body: { name: "nightly", command: "id", interval: 3600 },
    });
    expect(made.status).toBe(201);
    const trigger = await t.request("POST", `/schedule/${made.body.id}/trigger`, { key: scheduler });
    expect(trigger.status).toBe(403);
    expect(trigger.body.error).toMatchObject(forbiddenCommands);
    const retime = await t.request("PATCH", `/schedule/${made.body.id}`, {
      key: scheduler,
      body: { interval: 60 },
    });
    expect(retime.status).toBe(403);
    expect(await commandTasks()).toBe(before);

    // The same key still manages schedules that run a plugin, not a command.
    const plain = await t.request("POST", "/schedule", {
      key: scheduler,
      body: { name: "noop", interval: 3600 },
    });
    expect(plain.status).toBe(201);
    const fired = await t.request("POST", `/schedule/${made.body.id}/trigger`, { key: allowed });
    expect(fired.status).toBe(201);
    expect(await commandTasks()).toBe(before + 1);
  });

  it("a tasks:write key without commands:run cannot create a task with a command; with it, can", async () => {
    const writer = await t.keyWith(["tasks:write"]);
    const refused = await t.request("POST", "/task/create", {
      key: writer,
      body: { name: "x", command: "id" },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject(forbiddenCommands);
    expect((await t.request("POST", "/task/create", { key: writer, body: { name: "noop" } })).status).toBe(
      201,
    );
    const runner = await t.keyWith(["tasks:write", "commands:run"]);
    const ok = await t.request("POST", "/task/create", { key: runner, body: { name: "x", command: "id" } });
    expect(ok.status).toBe(201);
    // commands:run alone is not tasks:write.
    const only = await t.keyWith(["commands:run"]);
    const alone = await t.request("POST", "/task/create", { key: only, body: { name: "x", command: "id" } });
    expect(alone.status).toBe(403);
    expect(alone.body.error.details).toEqual([{ path: "scope", message: "requires tasks:write" }]);
  });

  it("POST /keys accepts commands:run", async () => {
    const made = await t.request("POST", "/keys", {
      body: { name: "runner", scopes: ["tasks:write", "commands:run"] },
    });
    expect(made.status).toBe(201);
    expect(made.body.scopes).toEqual(["tasks:write", "commands:run"]);
  });
});
