import { can, get, list, post } from "../api.js";
import { ErrorLine, OutcomeLine, Table, useAction, useData, usePager, When } from "../ui.js";
import type { Live, Task } from "./live-props.js";

interface Schedule {
  id: string;
  name: string;
  interval: number | null;
  cron: string | null;
  timezone: string;
  state: "active" | "paused" | "finished";
  next_run_at: string | null;
  last_fired_at: string | null;
  last_task_id: string | null;
  fired_count: number;
  skipped_count: number;
  last_error: string | null;
}

function timing(s: Schedule): string {
  return s.interval !== null ? `every ${s.interval} s` : `cron ${s.cron} (${s.timezone})`;
}

/** GET /schedule with each one's next run and last result; pause, resume, trigger now. */
export function SchedulesPage(props: { live: Live }) {
  const pager = usePager();
  const readsTasks = can(props.live.who, "tasks:read");
  const { data, error, reload } = useData(async () => {
    const page = await list<Schedule>(`/schedule?${pager.query({ limit: "50" })}`);
    // The last result is the status of the task the last firing created (a key without
    // tasks:read sees when it fired and its error only).
    const last = await Promise.all(
      page.items.map((s) =>
        readsTasks && s.last_task_id
          ? get<Task>(`/task/${encodeURIComponent(s.last_task_id)}`).catch(() => null)
          : null,
      ),
    );
    return { ...page, last };
  }, [pager.cursor, props.live.slowTick]);
  const [outcome, run] = useAction(reload);
  const writable = can(props.live.who, "schedules:write");
  const act = (s: Schedule, action: "pause" | "resume" | "trigger") =>
    run(`${action} ${s.name}`, async () => {
      const result = await post<{ task_id?: string; state?: string }>(
        `/schedule/${encodeURIComponent(s.id)}/${action}`,
      );
      return action === "trigger"
        ? `${s.name} fired now: task ${result.task_id}`
        : `${s.name} is now ${result.state ?? action}`;
    });
  return (
    <>
      <h1>Schedules</h1>
      <ErrorLine error={error} />
      <OutcomeLine outcome={outcome} />
      {data && data.items.length === 0 && <p>No schedules.</p>}
      {data && data.items.length > 0 && (
        <Table caption="Schedules" head={["Name", "When", "State", "Next run", "Last result", "Actions"]}>
          {data.items.map((s, i) => {
            const task = data.last[i];
            // One of pause and resume, whichever applies (a finished schedule can do neither).
            const toggle =
              s.state === "paused"
                ? { action: "resume" as const, label: "Resume", disabled: !writable }
                : { action: "pause" as const, label: "Pause", disabled: !writable || s.state === "finished" };
            return (
              <tr key={s.id} data-schedule-id={s.id}>
                <td>
                  <a href={`#/tasks?schedule_id=${encodeURIComponent(s.id)}`}>{s.name}</a>
                </td>
                <td>{timing(s)}</td>
                <td class="state" data-state={s.state}>
                  {s.state}
                </td>
                <td>
                  <When at={s.next_run_at} />
                </td>
                <td>
                  {s.last_fired_at ? (
                    <>
                      <When at={s.last_fired_at} />
                      {task && (
                        <>
                          {" "}
                          <a
                            href={`#/task/${encodeURIComponent(task.id)}`}
                            class="status"
                            data-status={task.status}
                          >
                            {task.status}
                          </a>
                        </>
                      )}
                      {` (${s.fired_count} fired${s.skipped_count ? `, ${s.skipped_count} skipped` : ""})`}
                    </>
                  ) : (
                    "not fired yet"
                  )}
                  {s.last_error && <span class="error"> {s.last_error}</span>}
                </td>
                <td class="actions">
                  <button
                    type="button"
                    disabled={toggle.disabled}
                    aria-label={`${toggle.label} schedule ${s.name}`}
                    onClick={() => act(s, toggle.action)}
                  >
                    {toggle.label}
                  </button>
                  <button
                    type="button"
                    disabled={!writable}
                    aria-label={`Trigger now: schedule ${s.name}`}
                    onClick={() => act(s, "trigger")}
                  >
                    Trigger now
                  </button>
                </td>
              </tr>
            );
          })}
        </Table>
      )}
      {pager.controls(data?.next)}
    </>
  );
}
