import { can, list, post } from "../api.js";
import { ErrorLine, OutcomeLine, Table, useAction, useData, usePager, When } from "../ui.js";
import type { Live } from "./live-props.js";

interface TaskType {
  name: string;
  counts: Record<string, number>;
  concurrency: number | null;
  paused: boolean;
  paused_at: string | null;
}

/** GET /task-types: each task name's counts by status, its concurrency limit, pause and resume. */
export function TaskTypesPage(props: { live: Live }) {
  const pager = usePager();
  const { data, error, reload } = useData(
    () => list<TaskType>(`/task-types?${pager.query({ limit: "50" })}`),
    [pager.cursor, props.live.tick],
  );
  const [outcome, run] = useAction(reload);
  const writable = can(props.live.who, "tasks:write");
  const toggle = (type: TaskType) => {
    const action = type.paused ? "resume" : "pause";
    void run(`${action} ${type.name}`, async () => {
      const after = await post<TaskType>(`/task-types/${encodeURIComponent(type.name)}/${action}`);
      return `${type.name} is now ${after.paused ? "paused: its queued tasks wait" : "running again"}`;
    });
  };
  return (
    <>
      <h1>Task types</h1>
      <p class="hint">
        Pausing a type holds its queued tasks, including ones created while it is paused; running tasks go on.
      </p>
      <ErrorLine error={error} />
      <OutcomeLine outcome={outcome} />
      {data && data.items.length === 0 && <p>No tasks yet.</p>}
      {data && data.items.length > 0 && (
        <Table
          caption="Task types"
          head={["Name", "Tasks by status", "Concurrency limit", "State", "Action"]}
        >
          {data.items.map((t) => (
            <tr key={t.name} data-task-type={t.name}>
              <td>
                <a href={`#/tasks?name=${encodeURIComponent(t.name)}`}>{t.name}</a>
              </td>
              <td>
                {Object.entries(t.counts)
                  .filter(([, n]) => n > 0)
                  .map(([status, n]) => `${status} ${n}`)
                  .join(" · ") || "none"}
              </td>
              <td>{t.concurrency ?? "none"}</td>
              <td class="state" data-state={t.paused ? "paused" : "active"}>
                {t.paused ? (
                  <>
                    paused since <When at={t.paused_at} />
                  </>
                ) : (
                  "active"
                )}
              </td>
              <td>
                <button
                  type="button"
                  disabled={!writable}
                  title={writable ? undefined : "needs tasks:write"}
                  aria-label={`${t.paused ? "Resume" : "Pause"} task type ${t.name}`}
                  onClick={() => toggle(t)}
                >
                  {t.paused ? "Resume" : "Pause"}
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      {pager.controls(data?.next)}
    </>
  );
}
