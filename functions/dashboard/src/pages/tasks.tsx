import { useEffect, useRef, useState } from "preact/hooks";
import { can, get, list, post } from "../api.js";
import { ErrorLine, messageOf, type Outcome, OutcomeLine, usePager } from "../ui.js";
import { type Live, Progress, STATUSES, type Task } from "./live-props.js";

interface Filters {
  status: string;
  name: string;
  label: string;
  schedule_id: string;
}
type BulkAction = "cancel" | "pause" | "resume" | "restart";
interface BulkCounts {
  changed: number;
  skipped: number;
  more: boolean;
}
const PAST: Record<BulkAction, string> = {
  cancel: "cancelled",
  pause: "paused",
  resume: "resumed",
  restart: "restarted",
};

/** The filters that are set, as the API's filter fields. */
function chosen(filters: Filters): Record<string, string> {
  return Object.fromEntries(Object.entries(filters).filter(([, v]) => v.trim() !== ""));
}

/**
 * Bulk action on the list's filter: first GET /tasks/actions/preview says how many tasks it will
 * change (and skip), then the confirmation sends POST /tasks/actions with the same filter.
 */
function BulkActions(props: { filters: Filters; live: Live; done: () => void }) {
  const [action, setAction] = useState<BulkAction>("cancel");
  const [preview, setPreview] = useState<BulkCounts | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);
  const filter = chosen(props.filters);
  const hasFilter = Object.keys(filter).length > 0;
  const writable = can(props.live.who, "tasks:write");
  const ask = async () => {
    try {
      const counts = await get<BulkCounts>(
        `/tasks/actions/preview?${new URLSearchParams({ action, ...filter })}`,
      );
      setPreview(counts);
      dialog.current?.showModal();
    } catch (e) {
      setOutcome({ ok: false, text: `${action} refused: ${messageOf(e)}` });
    }
  };
  const apply = async () => {
    dialog.current?.close();
    try {
      const result = await post<BulkCounts>("/tasks/actions", { action, filter });
      setOutcome({
        ok: true,
        text:
          `${PAST[action]} ${result.changed} task(s), skipped ${result.skipped}` +
          (result.more ? "; more remain: apply again" : ""),
      });
    } catch (e) {
      setOutcome({ ok: false, text: `${action} refused: ${messageOf(e)}` });
    }
    props.done();
  };
  const describe = Object.entries(filter)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  return (
    <section aria-labelledby="bulk-h" class="bulk">
      <h2 id="bulk-h">Act on every task of this filter</h2>
      <div class="filters">
        <label>
          Action
          <select
            value={action}
            disabled={!writable}
            onChange={(e) => setAction((e.target as HTMLSelectElement).value as BulkAction)}
          >
            {Object.keys(PAST).map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <button type="button" disabled={!writable || !hasFilter} onClick={ask}>
          Apply to matching tasks…
        </button>
      </div>
      {!writable && <p class="hint">This key cannot change tasks (needs tasks:write).</p>}
      {writable && !hasFilter && (
        <p class="hint">Choose a filter first: a bulk action never selects every task.</p>
      )}
      <OutcomeLine outcome={outcome} />
      <dialog ref={dialog} aria-labelledby="confirm-h" onClose={() => setPreview(null)}>
        {preview && (
          <>
            <h2 id="confirm-h">
              {action[0]!.toUpperCase() + action.slice(1)} {preview.changed} task(s)?
            </h2>
            <p data-testid="bulk-count">
              This will {action} {preview.changed} task(s) matching {describe}
              {preview.skipped > 0 &&
                `; ${preview.skipped} more match but their status does not allow ${action}`}
              {preview.more && "; more than one call's limit match, so apply it again afterwards"}.
            </p>
            <p class="actions">
              <button type="button" disabled={preview.changed === 0} onClick={apply}>
                Yes, {action} {preview.changed} task(s)
              </button>
              <button type="button" onClick={() => dialog.current?.close()}>
                No, go back
              </button>
            </p>
          </>
        )}
      </dialog>
    </section>
  );
}

/** Filters the tasks list starts with: #/tasks?status=failed&name=... (links from other pages). */
function filtersFrom(query: URLSearchParams): Filters {
  return {
    status: query.get("status") ?? "",
    name: query.get("name") ?? "",
    label: query.get("label") ?? "",
    schedule_id: query.get("schedule_id") ?? "",
  };
}

/** GET /tasks with its filters, one cursor page at a time, and bulk actions on the filter. */
export function TasksPage(props: { live: Live; query: URLSearchParams }) {
  // The page is keyed by its query, so a link with other filters starts it afresh.
  const [filters, setFilters] = useState<Filters>(() => filtersFrom(props.query));
  const [page, setPage] = useState<{ items: Task[]; next: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [again, setAgain] = useState(0);
  const pager = usePager();
  useEffect(() => {
    const started = performance.now();
    let current = true;
    list<Task>(`/tasks?${pager.query({ limit: "50", ...chosen(filters) })}`)
      .then((p) => {
        if (!current) return;
        setPage(p);
        setError(null);
        // When the rows are on screen (the next frame): the browser test reads it.
        requestAnimationFrame(() => {
          document.body.dataset.tasksRenderedMs = String(Math.round(performance.now() - started));
        });
      })
      .catch((e) => current && setError(messageOf(e)));
    return () => {
      current = false;
    };
  }, [filters, pager.cursor, props.live.tick, again]);
  const set = (field: keyof Filters) => (e: Event) => {
    const next = { ...filters, [field]: (e.target as HTMLInputElement | HTMLSelectElement).value };
    setFilters(next);
    pager.reset();
    // The address says the filter, so it can be shared or bookmarked (replaceState: no hashchange,
    // so the page is not started again).
    const query = new URLSearchParams(chosen(next)).toString();
    history.replaceState(null, "", `#/tasks${query ? `?${query}` : ""}`);
  };
  return (
    <>
      <h1>Tasks</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter tasks">
        <label>
          Status
          <select value={filters.status} onChange={set("status")}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
            {filters.status && !STATUSES.includes(filters.status) && (
              <option value={filters.status}>{filters.status}</option>
            )}
          </select>
        </label>
        <label>
          Name
          <input value={filters.name} onChange={set("name")} />
        </label>
        <label>
          Label (key:value)
          <input value={filters.label} onChange={set("label")} />
        </label>
        <label>
          Schedule id
          <input value={filters.schedule_id} onChange={set("schedule_id")} />
        </label>
      </form>
      <ErrorLine error={error} />
      {page && (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard (WCAG 2.1.1)
        <section class="table-wrap" aria-label="Tasks" tabIndex={0}>
          <table class="tasks">
            <caption class="visually-hidden">Tasks, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Attempt</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((t) => (
                <tr key={t.id} data-task-id={t.id}>
                  <td>
                    <a href={`#/task/${encodeURIComponent(t.id)}`}>{t.name}</a>
                  </td>
                  <td class="status" data-status={t.status}>
                    {t.status}
                  </td>
                  <td>
                    <Progress task={t} />
                  </td>
                  <td>
                    {t.attempt}/{t.max_attempts}
                  </td>
                  <td>{new Date(t.created_at).toLocaleString()}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {page && page.items.length === 0 && <p>No tasks match.</p>}
      {pager.controls(page?.next)}
      <BulkActions filters={filters} live={props.live} done={() => setAgain((n) => n + 1)} />
    </>
  );
}
