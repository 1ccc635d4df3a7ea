/** The figures of GET /stats: what a namespace's tasks are doing, and did in the last hour. */
export interface TaskStats {
  namespace: string;
  generated_at: string;
  counts: Record<string, number>;
  /** One entry per minute of the last hour that had a finish, oldest first. */
  finished_per_minute: Array<{ minute: string; succeeded: number; failed: number; cancelled: number }>;
  /** Failed and timed-out tasks over all that ended (cancelled aside) in the last hour; null: none ended. */
  failure_rate_last_hour: number | null;
  queue_depth: number;
  oldest_queued_age_seconds: number | null;
}

/** Port: reads a namespace's figures as of `now`. */
export interface TaskStatsReader {
  read(namespace: string, now: Date): Promise<TaskStats>;
}
