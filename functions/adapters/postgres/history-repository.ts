import type { HistoryPruner } from "../../core/plugins/plugin.js";
import { FINISHED_STATUSES } from "../../core/tasks/task.js";
import type { Db } from "./database.js";

/** Rows per DELETE: short statements, so pruning a large backlog never holds long locks. */
const BATCH = 5000;

/** What the clean_logs plugin prunes: old events, runs of finished tasks, settled deliveries. */
export class PostgresHistoryPruner implements HistoryPruner {
  constructor(private readonly db: Db) {}

  /** Runs `sql` with $1 before, $2 the batch size, $3 the namespace, then `more`, until a batch is short. */
  private async deleteInBatches(
    sql: string,
    before: Date,
    namespace: string | null,
    ...more: unknown[]
  ): Promise<number> {
    let total = 0;
    for (;;) {
      const { rowCount } = await this.db.query(sql, [before, BATCH, namespace, ...more]);
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < BATCH) return total;
    }
  }

  /** $3 is the namespace to prune, or null for every namespace (only an admin's task asks that). */
  async prune(before: { taskEvents: Date; taskRuns: Date; deliveries: Date }, namespace: string | null) {
    const task_events = await this.deleteInBatches(
      `DELETE FROM task_events WHERE id IN (
         SELECT id FROM task_events WHERE occurred_at < $1 AND ($3::text IS NULL OR namespace = $3)
         ORDER BY id LIMIT $2)`,
      before.taskEvents,
      namespace,
    );
    // A task still queued, running or retrying keeps its whole history: its earlier attempts
    // explain what it is doing now.
    const task_runs = await this.deleteInBatches(
      `DELETE FROM task_runs WHERE id IN (
         SELECT r.id FROM task_runs r JOIN tasks t ON t.id = r.task_id
         WHERE r.finished_at < $1 AND t.status = ANY($4::task_status[])
           AND ($3::text IS NULL OR t.namespace = $3)
         ORDER BY r.id LIMIT $2)`,
      before.taskRuns,
      namespace,
      FINISHED_STATUSES,
    );
    // Deliveries still pending or waiting for a retry are work in progress, not history.
    const deliveries = await this.deleteInBatches(
      `DELETE FROM deliveries WHERE id IN (
         SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.created_at < $1 AND d.status NOT IN ('pending', 'retrying')
           AND ($3::text IS NULL OR s.namespace = $3)
         LIMIT $2)`,
      before.deliveries,
      namespace,
    );
    return { task_events, task_runs, deliveries };
  }
}
