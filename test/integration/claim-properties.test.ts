import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresTaskQueue } from "../../functions/adapters/postgres/task-queue-repository.js";
import type { Task } from "../../functions/core/tasks/task.js";
import { leaseOf } from "../../functions/core/tasks/task-queue.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";
import { insertTask } from "../helpers/tasks.js";

/**
 * Batched claims against the real queue SQL, driven by random workloads: random task types (with
 * or without a concurrency limit, paused or not), random priorities, and a random sequence of
 * claims (one claimer, or several at once), ends of attempts (succeeded, failed, handed back) and
 * pause toggles. Whatever the sequence, a claim never exceeds a type's limit, never claims a task
 * of a paused type, never claims one attempt twice, and a single claimer starts the highest
 * priorities of a type first.
 */

type Step =
  | { kind: "claim"; claimers: number; max: number }
  | { kind: "end"; count: number; how: "succeeded" | "failed" | "released" }
  | { kind: "toggle"; type: number }
  | { kind: "duplicate" };

/** Tasks are spread over two namespaces (claims take turns between them); a type is paused in both. */
const NAMESPACES = ["default", "other"] as const;

const typeArb = fc.record({
  limit: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
  paused: fc.boolean(),
});
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("claim" as const),
      claimers: fc.integer({ min: 1, max: 3 }),
      max: fc.integer({ min: 1, max: 8 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("end" as const),
      count: fc.integer({ min: 1, max: 4 }),
      how: fc.constantFrom("succeeded" as const, "failed" as const, "released" as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("toggle" as const), type: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("duplicate" as const) }) },
);
const workloadArb = fc.record({
  types: fc.array(typeArb, { minLength: 1, maxLength: 4 }),
  tasks: fc.array(
    fc.record({
      type: fc.nat(3),
      priority: fc.integer({ min: 0, max: 9 }),
      namespace: fc.constantFrom(...NAMESPACES),
    }),
    {
      minLength: 1,
      maxLength: 30,
    },
  ),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 14 }),
});

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

const nameOf = (type: number) => `prop_type_${type}`;
const pause = (db: TestDatabase["db"], name: string) =>
  db.query("INSERT INTO task_type_pauses (namespace, name) SELECT unnest($1::text[]), $2", [
    [...NAMESPACES],
    name,
  ]);

describe("batched claims (property)", () => {
  it("never exceed a limit, never take a paused type, never claim an attempt twice, and start higher priorities first", async () => {
    await fc.assert(
      fc.asyncProperty(workloadArb, async ({ types, tasks, steps }) => {
        const db = database.db;
        await db.query("TRUNCATE tasks, task_runs, task_events, outbox, task_type_pauses CASCADE");
        const limitOf = (name: string) => {
          const index = Number(name.replace("prop_type_", ""));
          return Number.isInteger(index) ? (types[index]?.limit ?? undefined) : undefined;
        };
        const queue = new PostgresTaskQueue(db, {
          limitOf,
          leaseSeconds: 60,
          outputTailBytes: 1024,
          maxInfraRetries: 100,
        });
        const paused = types.map((t) => t.paused);
        for (const [i, t] of types.entries()) if (t.paused) await pause(db, nameOf(i));
        for (const t of tasks)
          await insertTask(db, {
            name: nameOf(t.type % types.length),
            priority: t.priority,
            namespace: t.namespace,
          });

        const claimedAttempts = new Set<string>();
        const running: Task[] = [];
        const record = (claimed: Task[]) => {
          for (const task of claimed) {
            const key = `${task.id}/${task.series}/${task.attempt}`;
            expect(claimedAttempts.has(key), `attempt ${key} claimed twice`).toBe(false);
            claimedAttempts.add(key);
            const type = Number(task.name.replace("prop_type_", ""));
            expect(paused[type], `${task.name} is paused`).toBe(false);
            running.push(task);
          }
        };

        for (const step of steps) {
          if (step.kind === "claim") {
            const before = await queuedByType(db);
            const batches = await Promise.all(
              Array.from({ length: step.claimers }, (_, i) => queue.claimBatch(`w${i}`, step.max)),
            );
            for (const batch of batches) {
              expect(batch.tasks.length).toBeLessThanOrEqual(step.max);
              // In claim order within a batch.
              const priorities = batch.tasks.map((t) => t.priority);
              expect(priorities).toEqual([...priorities].sort((a, b) => b - a));
              record(batch.tasks);
            }
            if (step.claimers === 1) {
              // One claimer takes, within each type, the best of what was claimable.
              for (const task of batches[0]!.tasks) {
                const better = (before.get(task.name) ?? []).filter(
                  (q) => q.priority > task.priority && !batches[0]!.tasks.some((t) => t.id === q.id),
                );
                expect(better, `${task.name}: priority ${task.priority} started before higher`).toEqual([]);
              }
            }
          } else if (step.kind === "end") {
            for (const task of running.splice(0, step.count)) {
              const lease = leaseOf(task, task.lease_owner!);
              const end =
                step.how === "succeeded"
                  ? ({ status: "succeeded", result: null } as const)
                  : step.how === "failed"
                    ? ({ status: "failed", error: "boom" } as const)
                    : ({ status: "released", error: "handed back" } as const);
              expect(await queue.finish(lease, end, {})).toBe(true);
            }
          } else if (step.kind === "toggle") {
            const type = step.type % types.length;
            paused[type] = !paused[type];
            if (paused[type]) await pause(db, nameOf(type));
            else await db.query("DELETE FROM task_type_pauses WHERE name = $1", [nameOf(type)]);
          } else {
            // The cloud path: the same message twice at once claims at most once.
            const { rows } = await db.query<{ id: string; attempt: number }>(
              "SELECT id, attempt FROM tasks WHERE status = 'queued' ORDER BY id LIMIT 1",
            );
            const target = rows[0];
            if (target) {
              const results = await Promise.all(
                ["sqs-a", "sqs-b"].map((w) => queue.claim(target.id, target.attempt + 1, w)),
              );
              const claimed = results.flatMap((r) => ("claimed" in r ? [r.claimed] : []));
              expect(claimed.length).toBeLessThanOrEqual(1);
              record(claimed);
            }
          }
          // Every limit holds after every step: open runs per type (a slot is an open run).
          const { rows: open } = await db.query<{ name: string; open: number }>(
            `SELECT t.name, count(*)::int AS open FROM task_runs r JOIN tasks t ON t.id = r.task_id
             WHERE r.finished_at IS NULL GROUP BY t.name`,
          );
          for (const { name, open: n } of open) {
            const limit = limitOf(name);
            if (limit !== undefined)
              expect(n, `${name} has ${n} open runs, limit ${limit}`).toBeLessThanOrEqual(limit);
          }
        }
        // The database agrees: one run row per attempt, each one claimed here.
        const { rows: runs } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM task_runs");
        expect(runs[0]!.n).toBe(claimedAttempts.size);
      }),
      { numRuns: 40 },
    );
  }, 120_000);
});

/** Claimable queued tasks of each type (not paused), as they were before a claim. */
async function queuedByType(
  db: TestDatabase["db"],
): Promise<Map<string, Array<{ id: string; priority: number }>>> {
  const { rows } = await db.query<{ id: string; name: string; priority: number }>(
    `SELECT t.id, t.name, t.priority FROM tasks t
     WHERE t.status = 'queued' AND NOT EXISTS (SELECT 1 FROM task_type_pauses p WHERE p.name = t.name)`,
  );
  const byType = new Map<string, Array<{ id: string; priority: number }>>();
  for (const row of rows) byType.set(row.name, [...(byType.get(row.name) ?? []), row]);
  return byType;
}
