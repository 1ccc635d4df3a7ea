import { describe, expect, it } from "vitest";
import { CONTROL_ACTIONS, planAction, planUpdate } from "../../functions/core/tasks/control-plan.js";
import { TRANSITIONS } from "../../functions/core/tasks/state-machine.js";
import { TASK_STATUSES, type Task, type TaskStatus } from "../../functions/core/tasks/task.js";
import { buildTask } from "../helpers/tasks.js";

const now = new Date("2026-05-01T12:00:00.000Z");
const earlier = new Date("2026-05-01T11:00:00.000Z");

/** A task in `status` midway through its second series, with an outcome to clear on restart. */
function task(status: TaskStatus, overrides: Partial<Task> = {}): Task {
  const started = status !== "queued" && status !== "paused" && status !== "retrying";
  return buildTask(
    {
      status,
      description: "d",
      attempt: status === "queued" ? 0 : 2,
      series: 1,
      progress: started ? { percent: 50 } : null,
      result: status === "succeeded" ? { ok: true } : null,
      error: status === "failed" ? "boom" : null,
      labels: { a: "b" },
      run_at: earlier,
      lease_expires_at: status === "running" ? now : null,
      ...overrides,
    },
    earlier,
  );
}

describe("planAction", () => {
  for (const action of CONTROL_ACTIONS) {
    for (const status of TASK_STATUSES) {
      const legal = (TRANSITIONS[action].from as readonly TaskStatus[]).includes(status);
      it(`${action} of a ${status} task is ${legal ? "planned" : "a 409 naming the status"}`, () => {
        if (legal) {
          const change = planAction(task(status), action, now);
          expect(change.expectedStatus).toBe(status);
          expect(change.next.status).toBe(TRANSITIONS[action].to);
          expect(change.event?.type).toBe(
            {
              cancel: "task.cancelled",
              pause: "task.paused",
              resume: "task.resumed",
              restart: "task.restarted",
            }[action],
          );
          expect((change.event!.data.task as { status: string }).status).toBe(TRANSITIONS[action].to);
        } else {
          expect(() => planAction(task(status), action, now)).toThrow(
            expect.objectContaining({ status: 409, code: "illegal_transition", current: status }),
          );
        }
      });
    }
  }

  it("cancel of a running task asks the engine to stop it and keeps the lease for fencing", () => {
    const change = planAction(task("running"), "cancel", now);
    expect(change.stopRunning).toBe(true);
    expect(change.next).toMatchObject({
      status: "cancelled",
      finished_at: now,
      lease_owner: "w1",
      attempt: 2,
    });
    expect(change.dispatch).toBeNull();
    expect(planAction(task("queued"), "cancel", now).stopRunning).toBe(false);
  });

  it("restart begins a new series from now with the old outcome cleared, and signals the queue", () => {
    const change = planAction(task("failed"), "restart", now);
    expect(change.next).toMatchObject({
      status: "queued",
      series: 2,
      attempt: 0,
      result: null,
      error: null,
      progress: null,
      started_at: null,
      finished_at: null,
      run_at: now,
    });
    expect(change.dispatch).toEqual({ task_id: "tsk_1", attempt: 1, priority: 5, run_at: now.toISOString() });
  });

  it("resume signals the queue for the next attempt and keeps a retry's run_at", () => {
    const retryAt = new Date("2026-05-01T12:10:00.000Z");
    const change = planAction(task("paused", { attempt: 1, run_at: retryAt }), "resume", now);
    expect(change.next.run_at).toEqual(retryAt);
    expect(change.dispatch).toEqual({
      task_id: "tsk_1",
      attempt: 2,
      priority: 5,
      run_at: retryAt.toISOString(),
    });
    expect(planAction(task("queued"), "pause", now).dispatch).toBeNull();
  });
});

describe("planUpdate", () => {
  const limits = { max_task_timeout: 100 };

  it("edits fields without an event, and re-signals a queued task whose priority changed", () => {
    const change = planUpdate(task("queued"), { priority: 9, description: null, labels: {} }, now, limits);
    expect(change.event).toBeNull();
    expect(change.next).toMatchObject({ priority: 9, description: null, labels: {}, updated_at: now });
    expect(change.dispatch).toMatchObject({ priority: 9 });
    expect(planUpdate(task("queued"), { description: "x" }, now, limits).dispatch).toBeNull();
  });

  it("applies a status action after the edits, with its event", () => {
    const change = planUpdate(task("queued"), { status: "paused", priority: 1 }, now, limits);
    expect(change.next).toMatchObject({ status: "paused", priority: 1 });
    expect(change.event?.type).toBe("task.paused");
  });

  it("refuses an illegal status with 409 naming the current status", () => {
    expect(() => planUpdate(task("succeeded"), { status: "paused" }, now, limits)).toThrow(
      expect.objectContaining({
        status: 409,
        details: [{ path: "status", message: expect.stringContaining("succeeded") }],
      }),
    );
  });

  it("refuses run_at on a running or finished task, and accepts it while waiting", () => {
    for (const status of ["running", "succeeded"] as const) {
      expect(() => planUpdate(task(status), { run_at: now }, now, limits)).toThrow(
        expect.objectContaining({ status: 409, details: [expect.objectContaining({ path: "run_at" })] }),
      );
    }
    expect(planUpdate(task("paused"), { run_at: now }, now, limits).next.run_at).toEqual(now);
  });

  it("refuses a timeout over max_task_timeout (400) and max_attempts below attempts made (422)", () => {
    expect(() => planUpdate(task("queued"), { timeout_seconds: 101 }, now, limits)).toThrow(
      expect.objectContaining({ status: 400 }),
    );
    expect(() => planUpdate(task("paused", { attempt: 2 }), { max_attempts: 1 }, now, limits)).toThrow(
      expect.objectContaining({ status: 422 }),
    );
  });

  it("keeps a next attempt for a waiting task: max_attempts must exceed the attempts made", () => {
    for (const status of ["queued", "paused", "retrying"] as const) {
      expect(() => planUpdate(task(status, { attempt: 2 }), { max_attempts: 2 }, now, limits)).toThrow(
        expect.objectContaining({
          status: 422,
          details: [{ path: "max_attempts", message: expect.stringContaining("must be >= 3") }],
        }),
      );
      expect(
        planUpdate(task(status, { attempt: 2 }), { max_attempts: 3 }, now, limits).next.max_attempts,
      ).toBe(3);
    }
    // Running or finished: the attempts made may be all there are.
    for (const status of ["running", "failed"] as const) {
      expect(
        planUpdate(task(status, { attempt: 2 }), { max_attempts: 2 }, now, limits).next.max_attempts,
      ).toBe(2);
    }
  });
});
