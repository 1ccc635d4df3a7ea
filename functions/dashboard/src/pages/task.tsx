import { useEffect, useState } from "preact/hooks";
import { ApiError, can, get, post } from "../api.js";
import { type Live, Progress, type Task } from "./live-props.js";

interface Run {
  attempt: number;
  status: string;
  started_at: string;
  finished_at: string | null;
  exit_code: number | null;
  error: string | null;
  output_tail: string | null;
}
interface TaskEvent {
  id: string;
  type: string;
  occurred_at: string;
}

const ACTIONS = ["cancel", "pause", "resume", "restart"] as const;

/** One task: its fields, why it waits, its attempts and its timeline, and the control buttons. */
export function TaskPage(props: { id: string; live: Live }) {
  const [task, setTask] = useState<Task | null>(null);
  const [runs, setRuns] = useState<Run[]>([]);
  const [events, setEvents] = useState<TaskEvent[]>([]);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const path = `/task/${encodeURIComponent(props.id)}`;
  const load = () =>
    Promise.all([get<Task>(path), get<Run[]>(`${path}/runs`), get<TaskEvent[]>(`${path}/events`)])
      .then(([t, r, e]) => {
        setTask(t);
        setRuns(r);
        setEvents(e);
        setError(null);
      })
      .catch((e: Error) => setError(e.message));
  useEffect(() => {
    void load();
  }, [props.id, props.live.tick]);
  const act = async (action: (typeof ACTIONS)[number]) => {
    try {
      const updated = await post<Task>(`${path}/${action}`);
      setMessage({ ok: true, text: `${action}: the task is now ${updated.status}` });
      await load();
    } catch (e) {
      setMessage({ ok: false, text: `${action} refused: ${e instanceof ApiError ? e.message : String(e)}` });
    }
  };
  if (error)
    return (
      <p role="alert" class="error">
        {error}
      </p>
    );
  if (!task) return <p>Loading…</p>;
  const writable = can(props.live.who, "tasks:write");
  return (
    <>
      <h1>
        Task {task.name}{" "}
        <span class="status" data-status={task.status}>
          {task.status}
        </span>
      </h1>
      <p class="actions">
        {ACTIONS.map((a) => (
          <button type="button" key={a} disabled={!writable} onClick={() => act(a)}>
            {a[0]!.toUpperCase() + a.slice(1)}
          </button>
        ))}
      </p>
      {message && (
        <p role="status" class={message.ok ? "ok" : "error"}>
          {message.text}
        </p>
      )}
      <section aria-labelledby="progress-h">
        <h2 id="progress-h">Progress</h2>
        <Progress task={task} /> {task.progress?.percent ?? 0}% {task.progress?.message ?? ""}
        {task.waiting_reason && <p>Waiting: {task.waiting_reason}</p>}
      </section>
      <section aria-labelledby="fields-h">
        <h2 id="fields-h">Fields</h2>
        <dl class="fields">
          {Object.entries(task).map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "—")}</dd>
            </div>
          ))}
        </dl>
      </section>
      <section aria-labelledby="runs-h">
        <h2 id="runs-h">Attempts</h2>
        {runs.map((r) => (
          <details key={`${r.attempt}-${r.started_at}`} open={r === runs[runs.length - 1]}>
            <summary>
              attempt {r.attempt}: {r.status} {r.exit_code === null ? "" : `(exit ${r.exit_code})`}{" "}
              {r.error ?? ""}
            </summary>
            <pre>{r.output_tail ?? ""}</pre>
          </details>
        ))}
      </section>
      <section aria-labelledby="events-h">
        <h2 id="events-h">Timeline</h2>
        <ol class="timeline">
          {events.map((e) => (
            <li key={e.id}>
              <time>{e.occurred_at}</time> {e.type}
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}
