import { can, get, list, post } from "../api.js";
import { ErrorLine, OutcomeLine, Section, useAction, useData } from "../ui.js";
import { type Live, Progress, type Task } from "./live-props.js";

interface Run {
  series: number;
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
/** The timeline's first page: a long task's progress events can run to thousands. */
const EVENTS_SHOWN = 500;

/** One task: its fields, why it waits, its attempts and its timeline, and the control buttons. */
export function TaskPage(props: { id: string; live: Live }) {
  const path = `/task/${encodeURIComponent(props.id)}`;
  const { data, error, reload } = useData(async () => {
    const [task, runs, events] = await Promise.all([
      get<Task>(path),
      get<Run[]>(`${path}/runs?limit=100`),
      list<TaskEvent>(`${path}/events?limit=${EVENTS_SHOWN}`),
    ]);
    return { task, runs, events };
  }, [props.id, props.live.tick]);
  const [outcome, run] = useAction(reload);
  const act = (action: (typeof ACTIONS)[number]) =>
    run(action, async () => `${action}: the task is now ${(await post<Task>(`${path}/${action}`)).status}`);
  if (error && !data) return <ErrorLine error={error} />;
  if (!data) return <p>Loading…</p>;
  const { task, runs, events } = data;
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
      <ErrorLine error={error} />
      <OutcomeLine outcome={outcome} />
      <Section id="progress" title="Progress">
        <Progress task={task} /> {task.progress?.percent ?? 0}% {task.progress?.message ?? ""}
        {task.waiting_reason && <p>Waiting: {task.waiting_reason}</p>}
      </Section>
      <Section id="fields" title="Fields">
        <dl class="fields">
          {Object.entries(task).map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "—")}</dd>
            </div>
          ))}
        </dl>
      </Section>
      <Section id="runs" title="Attempts">
        {runs.map((r) => (
          <details key={`${r.series}-${r.attempt}-${r.started_at}`} open={r === runs[runs.length - 1]}>
            <summary>
              {r.series > 0 ? `restart ${r.series}, ` : ""}attempt {r.attempt}: {r.status}{" "}
              {r.exit_code === null ? "" : `(exit ${r.exit_code})`} {r.error ?? ""}
            </summary>
            <pre>{r.output_tail ?? ""}</pre>
          </details>
        ))}
      </Section>
      <Section id="events" title="Timeline">
        <ol class="timeline">
          {events.items.map((e) => (
            <li key={e.id}>
              <time dateTime={e.occurred_at}>{e.occurred_at}</time> {e.type}
            </li>
          ))}
        </ol>
        {events.next && <p class="hint">The first {EVENTS_SHOWN} events; later ones are not shown.</p>}
      </Section>
    </>
  );
}
