import { pausedTypeKey, type WaitingFacts } from "../../core/tasks/waiting-reason.js";
import { OPEN_RUNS, openRunsByName } from "./queue/queue-sql.js";

/**
 * The facts behind waiting_reason (core/tasks/waiting-reason.ts) as SQL select-list items, for
 * the two statements that read them: the page's facts query (task-control-repository.ts) and the
 * create statement (task-repository.ts), which reads them in its own snapshot (at its start) so
 * that a create's answer needs no second query unless the task has a place in the line.
 *
 * `names` is a text[] expression of the task names asked about; `types` a relation with columns
 * (namespace, name) of the task types asked about.
 */
export function queueFactsSelect(names: string, types: string): string {
  return `(SELECT count(*) FROM ${OPEN_RUNS}) AS total,
  coalesce((SELECT jsonb_object_agg(name, open) FROM (${openRunsByName(names)}) r), '{}') AS by_name,
  coalesce((SELECT jsonb_agg(jsonb_build_array(p.namespace, p.name)) FROM task_type_pauses p
    WHERE (p.namespace, p.name) IN (SELECT namespace, name FROM ${types})), '[]') AS paused,
  -- Live local workers (heartbeat within their own timeout) and their slots: MAX_CONCURRENT_TASKS is per process.
  (SELECT count(*) FROM workers WHERE heartbeat_at >= now() - make_interval(secs => dead_after_seconds)) AS workers,
  (SELECT COALESCE(sum(slots), 0) FROM workers
    WHERE heartbeat_at >= now() - make_interval(secs => dead_after_seconds)) AS slots`;
}

/** The columns queueFactsSelect adds to a row. */
export interface QueueFactsRow {
  total: number;
  by_name: Record<string, number>;
  paused: Array<[string, string]>;
  workers: number;
  slots: number;
}

/** The facts of a QueueFactsRow, with no place in the line known for any task. */
export function queueFactsOf(row: QueueFactsRow): WaitingFacts {
  return {
    runningTotal: row.total,
    workers: { count: row.workers, slots: row.slots },
    runningByName: new Map(Object.entries(row.by_name)),
    pausedTypes: new Set(row.paused.map(([namespace, name]) => pausedTypeKey(namespace, name))),
    aheadByTaskId: new Map(),
  };
}
