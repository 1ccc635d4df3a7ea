import { describe, expect, it } from "vitest";
import { claimedTask, startedEvent } from "../../functions/core/tasks/attempt-plan.js";
import { buildTask } from "../helpers/tasks.js";

describe("claimedTask", () => {
  it("plans a candidate's claim: running its next attempt for the worker, started and updated at the claim", () => {
    const at = new Date("2026-05-01T12:00:01.000Z");
    const candidate = buildTask({ status: "queued", attempt: 1, infra_retries: 1 });
    const claimed = claimedTask(candidate, "w-1", at);
    expect(claimed).toEqual({
      ...candidate,
      status: "running",
      attempt: 2,
      lease_owner: "w-1",
      started_at: at,
      updated_at: at,
    });
    // The candidate itself is not changed (the claim may leave it queued: a type's limit).
    expect(candidate).toMatchObject({ status: "queued", attempt: 1 });
    // task.started shows the task as claimed.
    expect(startedEvent(claimed, "w-1", at).data).toMatchObject({
      task: { status: "running", attempt: 2, started_at: at.toISOString() },
      worker_id: "w-1",
    });
  });
});
