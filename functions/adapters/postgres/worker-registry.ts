import type { Queryable } from "./database.js";

/** A local worker process as it registers in `workers` (migrations/0021_workers.sql). */
export interface WorkerRegistration {
  id: string;
  host: string;
  pid: number;
  slots: number;
  /** How long this process's commands outlive its last heartbeat, at most: its presence timeout. */
  deadAfterSeconds: number;
}

/** The live workers' capacity, for waiting_reason: slots summed over rows not past their timeout. */
export interface WorkerCapacity {
  workers: number;
  slots: number;
}

/** Register, beat, leave: the presence of one local worker process on the shared database. */
export class PostgresWorkerRegistry {
  constructor(private readonly db: Queryable) {}

  async register(worker: WorkerRegistration): Promise<void> {
    await this.db.query(
      `INSERT INTO workers (id, host, pid, slots, dead_after_seconds) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET slots = EXCLUDED.slots, dead_after_seconds = EXCLUDED.dead_after_seconds,
         heartbeat_at = now()`,
      [worker.id, worker.host, worker.pid, worker.slots, worker.deadAfterSeconds],
    );
  }

  /** false: the row is gone, so another process took this one for dead (and its tasks back). */
  async beat(id: string): Promise<boolean> {
    const { rowCount } = await this.db.query("UPDATE workers SET heartbeat_at = now() WHERE id = $1", [id]);
    return rowCount === 1;
  }

  async leave(id: string): Promise<void> {
    await this.db.query("DELETE FROM workers WHERE id = $1", [id]);
  }

  async capacity(): Promise<WorkerCapacity> {
    const { rows } = await this.db.query<{ workers: number; slots: number }>(
      `SELECT count(*)::int AS workers, COALESCE(sum(slots), 0)::int AS slots FROM workers
       WHERE heartbeat_at >= now() - make_interval(secs => dead_after_seconds)`,
    );
    return rows[0] ?? { workers: 0, slots: 0 };
  }
}
