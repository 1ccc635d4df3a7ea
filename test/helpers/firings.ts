import type { Db } from "../../functions/adapters/postgres/database.js";

/** One schedule.fired event of a schedule, as the scheduler tests read it back. */
export interface Firing {
  task_id: string;
  scheduled_for: string;
  fired_at: string;
  trigger: string;
  missed_count: number;
  /** The created_at of the task the firing made. */
  task_created_at: Date;
}

/**
 * Every firing of a schedule (its schedule.fired events), in the order they were written, or by
 * the instant they stand for (`"scheduled_for"`).
 */
export function firings(
  db: Db,
  scheduleId: string,
  order: "written" | "scheduled_for" = "written",
): Promise<Firing[]> {
  return db.rows<Firing>(
    `SELECT e.data->>'task_id' AS task_id, e.data->>'scheduled_for' AS scheduled_for,
            e.data->>'fired_at' AS fired_at, e.data->>'trigger' AS trigger,
            (e.data->>'missed_count')::int AS missed_count, t.created_at AS task_created_at
     FROM task_events e JOIN tasks t ON t.id = e.task_id
     WHERE e.type = 'schedule.fired' AND t.schedule_id = $1
     ORDER BY ${order === "written" ? "e.id" : "e.data->>'scheduled_for'"}`,
    [scheduleId],
  );
}
