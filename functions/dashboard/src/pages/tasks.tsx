import { useEffect, useState } from "preact/hooks";
import { list } from "../api.js";
import { type Live, Progress, type Task } from "./live-props.js";

/** GET /tasks with its filters, one cursor page at a time. */
export function TasksPage(props: { live: Live }) {
  const [status, setStatus] = useState("");
  const [name, setName] = useState("");
  const [label, setLabel] = useState("");
  const [cursors, setCursors] = useState<string[]>([]);
  const [page, setPage] = useState<{ items: Task[]; next: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    const query = new URLSearchParams({ limit: "50" });
    if (status) query.set("status", status);
    if (name) query.set("name", name);
    if (label) query.set("label", label);
    if (cursor) query.set("cursor", cursor);
    const started = performance.now();
    list<Task>(`/tasks?${query}`)
      .then((p) => {
        setPage(p);
        setError(null);
        requestAnimationFrame(() => {
          document.body.dataset.tasksRenderedMs = String(Math.round(performance.now() - started));
        });
      })
      .catch((e: Error) => setError(e.message));
  }, [status, name, label, cursor, props.live.tick]);
  const reset = () => setCursors([]);
  return (
    <>
      <h1>Tasks</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter tasks">
        <label>
          Status
          <select
            value={status}
            onChange={(e) => {
              setStatus((e.target as HTMLSelectElement).value);
              reset();
            }}
          >
            <option value="">any</option>
            {["queued", "running", "retrying", "paused", "succeeded", "failed", "timed_out", "cancelled"].map(
              (s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ),
            )}
          </select>
        </label>
        <label>
          Name
          <input
            value={name}
            onChange={(e) => {
              setName((e.target as HTMLInputElement).value);
              reset();
            }}
          />
        </label>
        <label>
          Label (key:value)
          <input
            value={label}
            onChange={(e) => {
              setLabel((e.target as HTMLInputElement).value);
              reset();
            }}
          />
        </label>
      </form>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {page && (
        <div class="table-wrap">
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
        </div>
      )}
      <p class="pager">
        <button
          type="button"
          disabled={cursors.length === 0}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          Previous page
        </button>
        <button
          type="button"
          disabled={!page?.next}
          onClick={() => page?.next && setCursors([...cursors, page.next])}
        >
          Next page
        </button>
      </p>
    </>
  );
}
