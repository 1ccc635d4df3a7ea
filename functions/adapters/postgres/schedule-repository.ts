import type { TmeEvent } from "../../core/events/event.js";
import { noObserver, type Observer } from "../../core/observability/observer.js";
import type { Schedule } from "../../core/schedules/schedule.js";
import type {
  ListOptions,
  LockedSchedule,
  NewSchedule,
  ScheduleChanges,
  SchedulePage,
  ScheduleStore,
} from "../../core/schedules/schedule-store.js";
import { type DesiredSchedule, desiredStateOf, SCHEDULER_SYNC } from "../../core/schedules/scheduler-port.js";
import { UNFINISHED_STATUSES } from "../../core/tasks/task.js";
import { type Db, type Queryable, TransactionBoundDb } from "./database.js";
import { writeEvent } from "./event-writer.js";
import { keysetPage } from "./keyset.js";
import { OUTBOX_CHANNEL } from "./outbox-repository.js";
import { PostgresTaskStore } from "./task-repository.js";

/** NOTIFY channel that wakes local scheduler loops when a schedule's timing or state changes. */
export const SCHEDULE_CHANGED_CHANNEL = "tme_schedule_changed";

export const SCHEDULE_COLUMNS = `id, namespace, name, interval_seconds, cron, timezone, start_at, end_at, overlap,
  enabled, task_template, next_run_at, last_fired_at, last_task_id, fired_count, skipped_count, last_skipped_at,
  pending_occurrence_at, pending_missed_count, last_error, created_at, updated_at, deleted_at`;

/** Columns save() may set, and how each value is written. */
const WRITABLE: Record<keyof ScheduleChanges, ((v: unknown) => unknown) | null> = {
  name: null,
  interval_seconds: null,
  cron: null,
  timezone: null,
  start_at: null,
  end_at: null,
  overlap: null,
  enabled: null,
  task_template: (v) => JSON.stringify(v),
  next_run_at: null,
  last_fired_at: null,
  last_task_id: null,
  fired_count: null,
  skipped_count: null,
  last_skipped_at: null,
  pending_occurrence_at: null,
  pending_missed_count: null,
  last_error: null,
  deleted_at: null,
};

async function writeSync(tx: Queryable, schedule: Schedule): Promise<void> {
  const desired: DesiredSchedule = desiredStateOf(schedule);
  await tx.query(
    `INSERT INTO outbox (event_id, namespace, type, payload)
     VALUES ('sync_' || $1 || '_' || md5(random()::text), $2, $3, $4)`,
    [schedule.id, schedule.namespace, SCHEDULER_SYNC, JSON.stringify(desired)],
  );
  await tx.query("SELECT pg_notify($1, $2), pg_notify($3, '')", [
    SCHEDULE_CHANGED_CHANNEL,
    schedule.id,
    OUTBOX_CHANNEL,
  ]);
}

class PostgresLockedSchedule implements LockedSchedule {
  readonly tasks: PostgresTaskStore;

  constructor(
    private readonly tx: Queryable,
    public schedule: Schedule,
    observer: Observer,
  ) {
    this.tasks = new PostgresTaskStore(new TransactionBoundDb(tx), observer);
  }

  async hasUnfinishedRun(): Promise<boolean> {
    const { rows } = await this.tx.query<{ unfinished: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM tasks WHERE schedule_id = $1 AND status = ANY($2::task_status[])) AS unfinished`,
      [this.schedule.id, UNFINISHED_STATUSES],
    );
    return rows[0]!.unfinished;
  }

  writeEvent(event: TmeEvent, taskId?: string): Promise<void> {
    return writeEvent(this.tx, event, taskId);
  }

  async save(changes: ScheduleChanges, options: { sync?: boolean } = {}): Promise<Schedule> {
    const sets: string[] = ["updated_at = now()"];
    const values: unknown[] = [this.schedule.id];
    for (const [key, value] of Object.entries(changes)) {
      if (value === undefined) continue;
      if (!(key in WRITABLE)) throw new Error(`schedules.${key} is not writable`);
      const encode = WRITABLE[key as keyof ScheduleChanges];
      values.push(encode ? encode(value) : value);
      sets.push(`${key} = $${values.length}`);
    }
    const { rows } = await this.tx.query<Schedule>(
      `UPDATE schedules SET ${sets.join(", ")} WHERE id = $1 RETURNING ${SCHEDULE_COLUMNS}`,
      values,
    );
    this.schedule = rows[0]!;
    if (options.sync) await writeSync(this.tx, this.schedule);
    return this.schedule;
  }
}

export class PostgresScheduleStore implements ScheduleStore {
  constructor(
    private readonly db: Db,
    private readonly observer: Observer = noObserver,
  ) {}

  insert(schedule: NewSchedule): Promise<Schedule> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<Schedule>(
        `INSERT INTO schedules (id, namespace, name, interval_seconds, cron, timezone, start_at, end_at, overlap,
           enabled, task_template, next_run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
         RETURNING ${SCHEDULE_COLUMNS}`,
        [
          schedule.id,
          schedule.namespace,
          schedule.name,
          schedule.interval_seconds,
          schedule.cron,
          schedule.timezone,
          schedule.start_at,
          schedule.end_at,
          schedule.overlap,
          schedule.enabled,
          JSON.stringify(schedule.task_template),
          schedule.next_run_at,
          schedule.created_at,
        ],
      );
      await writeSync(tx, rows[0]!);
      return rows[0]!;
    });
  }

  async get(namespace: string, id: string): Promise<Schedule | undefined> {
    const rows = await this.db.rows<Schedule>(
      `SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE namespace = $1 AND id = $2 AND deleted_at IS NULL`,
      [namespace, id],
    );
    return rows[0];
  }

  async list(namespace: string, options: ListOptions): Promise<SchedulePage> {
    const where = ["namespace = $1", "deleted_at IS NULL"];
    const values: unknown[] = [namespace];
    if (options.name !== undefined) {
      values.push(options.name);
      where.push(`name = $${values.length}`);
    }
    return keysetPage<Schedule>(
      this.db,
      {
        columns: SCHEDULE_COLUMNS,
        from: "schedules",
        where: where.join(" AND "),
        values,
        column: "created_at",
      },
      options,
    );
  }

  async withSchedule<T>(
    namespace: string,
    id: string,
    fn: (locked: LockedSchedule) => Promise<T>,
  ): Promise<T | undefined> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<Schedule>(
        `SELECT ${SCHEDULE_COLUMNS} FROM schedules
         WHERE namespace = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`,
        [namespace, id],
      );
      if (!rows[0]) return undefined;
      return fn(new PostgresLockedSchedule(tx, rows[0], this.observer));
    });
  }

  withDueSchedule<T>(
    now: Date,
    exclude: string[],
    fn: (locked: LockedSchedule) => Promise<T>,
  ): Promise<{ id: string; result: T } | undefined> {
    // SKIP LOCKED: a schedule another scheduler is firing is not waited for, and once that one
    // commits, its next_run_at has moved on, so the row no longer matches. Each occurrence is
    // therefore fired by exactly one of any number of schedulers sharing the database.
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<Schedule>(
        `SELECT ${SCHEDULE_COLUMNS} FROM schedules s
         WHERE s.enabled AND s.deleted_at IS NULL AND NOT (s.id = ANY($2::text[]))
           AND (s.next_run_at <= $1
                OR (s.pending_occurrence_at IS NOT NULL AND NOT EXISTS (
                      SELECT 1 FROM tasks t WHERE t.schedule_id = s.id AND t.status = ANY($3::task_status[]))))
         ORDER BY s.next_run_at NULLS LAST
         LIMIT 1 FOR UPDATE OF s SKIP LOCKED`,
        [now, exclude, UNFINISHED_STATUSES],
      );
      const row = rows[0];
      if (!row) return undefined;
      return { id: row.id, result: await fn(new PostgresLockedSchedule(tx, row, this.observer)) };
    });
  }

  async activeAfter(now: Date): Promise<Array<{ namespace: string; id: string }>> {
    return this.db.rows<{ namespace: string; id: string }>(
      "SELECT namespace, id FROM schedules WHERE enabled AND deleted_at IS NULL AND next_run_at > $1",
      [now],
    );
  }

  async earliestNextRun(): Promise<Date | null> {
    const rows = await this.db.rows<{ next: Date | null }>(
      "SELECT min(next_run_at) AS next FROM schedules WHERE enabled AND deleted_at IS NULL",
    );
    return rows[0]?.next ?? null;
  }

  async desiredState(id: string): Promise<DesiredSchedule | undefined> {
    const rows = await this.db.rows<Schedule>(`SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE id = $1`, [
      id,
    ]);
    return rows[0] ? desiredStateOf(rows[0]) : undefined;
  }
}
