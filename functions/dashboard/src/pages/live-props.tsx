import type { WhoAmI } from "../api.js";

/** What every page gets: counters that say when to re-read, and the key. */
export interface Live {
  /** Moves when a task changed (at most every 250 ms): pages of tasks follow it. */
  tick: number;
  /**
   * Moves every 5 s: pages whose reads cost a request per row (subscriptions, schedules) or that
   * the task stream does not cover (alerts) follow this instead, so a busy engine does not make
   * them re-read four times a second.
   */
  slowTick: number;
  who: WhoAmI;
}

export const STATUSES = [
  "queued",
  "running",
  "retrying",
  "paused",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
];

export interface Task {
  id: string;
  name: string;
  status: string;
  priority: number;
  attempt: number;
  max_attempts: number;
  progress: { percent: number; message?: string } | null;
  error: string | null;
  labels: Record<string, string>;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  waiting_reason?: string | null;
  [field: string]: unknown;
}

export function Progress(props: { task: Task }) {
  const percent = props.task.progress?.percent ?? (props.task.status === "succeeded" ? 100 : 0);
  return (
    <progress max={100} value={percent} aria-label={`${props.task.name} progress`}>
      {percent}%
    </progress>
  );
}
