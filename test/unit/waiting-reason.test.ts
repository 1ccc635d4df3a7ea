import { describe, expect, it } from "vitest";
import type { Task, TaskStatus } from "../../functions/core/tasks/task.js";
import {
  AHEAD_COUNT_CAP,
  hasQueuePlace,
  pausedTypeKey,
  type WaitingFacts,
  waitingReason,
} from "../../functions/core/tasks/waiting-reason.js";
import { buildTask } from "../helpers/tasks.js";

const now = new Date("2026-05-01T12:00:00.000Z");

const task = (overrides: Partial<Task> = {}): Task => buildTask(overrides, now);

function facts(overrides: Partial<WaitingFacts> = {}): WaitingFacts {
  return {
    runningTotal: 0,
    workers: { count: 0, slots: 0 },
    runningByName: new Map(),
    pausedTypes: new Set(),
    aheadByTaskId: new Map(),
    ...overrides,
  };
}

const limits = { maxConcurrent: 4, concurrencyOf: (name: string) => (name === "report" ? 2 : undefined) };

describe("waitingReason", () => {
  it.each<TaskStatus>(["running", "succeeded", "failed", "timed_out", "cancelled"])(
    "is null for a %s task",
    (status) => {
      expect(waitingReason(task({ status }), facts(), limits, now)).toBeNull();
    },
  );

  it("says paused for a paused task, whatever else holds", () => {
    const f = facts({ pausedTypes: new Set([pausedTypeKey("default", "report")]), runningTotal: 9 });
    expect(waitingReason(task({ status: "paused" }), f, limits, now)).toBe("paused");
  });

  it("gives the retry time of a retrying task", () => {
    const runAt = new Date("2026-05-01T12:05:00.000Z");
    expect(waitingReason(task({ status: "retrying", run_at: runAt }), facts(), limits, now)).toBe(
      "retrying at 2026-05-01T12:05:00.000Z",
    );
  });

  it("says task type paused before anything else for a queued task", () => {
    const f = facts({ pausedTypes: new Set([pausedTypeKey("default", "report")]) });
    const future = new Date(now.getTime() + 60_000);
    expect(waitingReason(task({ run_at: future }), f, limits, now)).toBe("task type paused");
  });

  it("does not take another namespace's pause of the same name", () => {
    const f = facts({ pausedTypes: new Set([pausedTypeKey("other", "report")]) });
    expect(waitingReason(task(), f, limits, now)).toBe("next in queue, waiting for a free worker");
  });

  it("gives the run_at of a delayed task", () => {
    const future = new Date("2026-06-01T00:00:00.000Z");
    expect(waitingReason(task({ run_at: future }), facts(), limits, now)).toBe(
      "scheduled for 2026-06-01T00:00:00.000Z",
    );
  });

  it("names the type's concurrency limit when it is reached", () => {
    const f = facts({ runningByName: new Map([["report", 2]]), runningTotal: 2 });
    expect(waitingReason(task(), f, limits, now)).toBe(
      "concurrency limit of report reached (2 of 2 running)",
    );
  });

  it("ignores a type limit that is not reached, and types without one", () => {
    const f = facts({
      runningByName: new Map([
        ["report", 1],
        ["other", 50],
      ]),
      runningTotal: 1,
    });
    expect(waitingReason(task(), f, limits, now)).toBe("next in queue, waiting for a free worker");
    expect(
      waitingReason(
        task({ name: "other" }),
        facts({ runningByName: new Map([["other", 3]]), runningTotal: 3 }),
        limits,
        now,
      ),
    ).toBe("next in queue, waiting for a free worker");
  });

  it("with no worker process registered (the cloud), says MAX_CONCURRENT_TASKS slots are busy", () => {
    const f = facts({ runningTotal: 4 });
    expect(waitingReason(task({ name: "other" }), f, limits, now)).toBe(
      "all worker slots busy (4 running, 4 slots: MAX_CONCURRENT_TASKS)",
    );
  });

  it("with worker processes, counts the slots of all of them (MAX_CONCURRENT_TASKS is per process)", () => {
    const busy = facts({ runningTotal: 8, workers: { count: 2, slots: 8 } });
    expect(waitingReason(task({ name: "other" }), busy, limits, now)).toBe(
      "all worker slots busy (8 running, 8 slots across 2 workers)",
    );
    // Four running is not "full" when two processes of four slots each are alive.
    const room = facts({ runningTotal: 4, workers: { count: 2, slots: 8 } });
    expect(waitingReason(task({ name: "other" }), room, limits, now)).toBe(
      "next in queue, waiting for a free worker",
    );
    const one = facts({ runningTotal: 4, workers: { count: 1, slots: 4 } });
    expect(waitingReason(task({ name: "other" }), one, limits, now)).toBe(
      "all worker slots busy (4 running, 4 slots across 1 worker)",
    );
  });

  it("counts the tasks ahead in the queue", () => {
    expect(waitingReason(task(), facts({ aheadByTaskId: new Map([["tsk_1", 3]]) }), limits, now)).toBe(
      "queued behind 3 tasks of higher or equal priority",
    );
    expect(waitingReason(task(), facts({ aheadByTaskId: new Map([["tsk_1", 1]]) }), limits, now)).toBe(
      "queued behind 1 task of higher or equal priority",
    );
    expect(
      waitingReason(task(), facts({ aheadByTaskId: new Map([["tsk_1", AHEAD_COUNT_CAP]]) }), limits, now),
    ).toBe(`queued behind more than ${AHEAD_COUNT_CAP} tasks of higher or equal priority`);
  });

  it("says next in queue when nothing is ahead and no limit holds", () => {
    expect(waitingReason(task(), facts(), limits, now)).toBe("next in queue, waiting for a free worker");
  });
});

describe("hasQueuePlace", () => {
  it("is true only for a due queued task of a type not paused: the tasks whose reason may read the line", () => {
    const paused = facts({ pausedTypes: new Set([pausedTypeKey("default", "report")]) });
    expect(hasQueuePlace(task({ name: "report" }), facts(), limits, now)).toBe(true);
    expect(hasQueuePlace(task({ name: "report" }), paused, limits, now)).toBe(false);
    expect(hasQueuePlace(task({ name: "report", namespace: "other" }), paused, limits, now)).toBe(true);
    expect(hasQueuePlace(task({ run_at: new Date(now.getTime() + 1) }), facts(), limits, now)).toBe(false);
    for (const status of ["paused", "retrying", "running", "succeeded"] as const)
      expect(hasQueuePlace(task({ status }), facts(), limits, now)).toBe(false);
  });

  it("is false while a limit holds the task: the limit is its reason, whatever its place", () => {
    const typeFull = facts({ runningByName: new Map([["report", 2]]), runningTotal: 2 });
    expect(hasQueuePlace(task({ name: "report" }), typeFull, limits, now)).toBe(false);
    expect(hasQueuePlace(task({ name: "other" }), typeFull, limits, now)).toBe(true);
    const slotsBusy = facts({ runningTotal: 4 });
    expect(hasQueuePlace(task({ name: "other" }), slotsBusy, limits, now)).toBe(false);
    const workersBusy = facts({ runningTotal: 8, workers: { count: 2, slots: 8 } });
    expect(hasQueuePlace(task({ name: "other" }), workersBusy, limits, now)).toBe(false);
    // Each of these says its limit without the line: the place would change nothing.
    for (const f of [slotsBusy, workersBusy])
      expect(waitingReason(task({ name: "other" }), f, limits, now)).toMatch(/^all worker slots busy/);
  });
});
