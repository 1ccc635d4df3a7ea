import { useState } from "preact/hooks";
import { list } from "../api.js";
import { ErrorLine, Section, Table, useData, When } from "../ui.js";
import type { Live } from "./live-props.js";

interface Alert {
  id: string;
  rule: string;
  subject: string;
  status: "open" | "resolved";
  message: string;
  raised_at: string;
  resolved_at: string | null;
}

function AlertTable(props: { caption: string; alerts: Alert[]; resolved?: boolean }) {
  return (
    <Table
      caption={props.caption}
      head={["Raised", ...(props.resolved ? ["Resolved"] : []), "Rule", "Subject", "Message"]}
    >
      {props.alerts.map((a) => (
        <tr key={a.id} data-alert-id={a.id}>
          <td>
            <When at={a.raised_at} />
          </td>
          {props.resolved && (
            <td>
              <When at={a.resolved_at} />
            </td>
          )}
          <td>{a.rule}</td>
          <td class="url">{a.subject}</td>
          <td>{a.message}</td>
        </tr>
      ))}
    </Table>
  );
}

/** GET /alerts: the open ones, and those resolved within a chosen window. */
export function AlertsPage(props: { live: Live }) {
  const [hours, setHours] = useState("24");
  const { data, error } = useData(
    () =>
      Promise.all([
        list<Alert>("/alerts?status=open&limit=100"),
        list<Alert>(`/alerts?status=resolved&resolved_within_hours=${hours}&limit=100`),
      ]),
    [hours, props.live.slowTick],
  );
  return (
    <>
      <h1>Alerts</h1>
      <ErrorLine error={error} />
      <Section id="open" title="Open">
        {data &&
          (data[0].items.length === 0 ? (
            <p>No open alerts.</p>
          ) : (
            <AlertTable caption="Open alerts" alerts={data[0].items} />
          ))}
      </Section>
      <Section id="resolved" title="Resolved">
        <label>
          Resolved within{" "}
          <select value={hours} onChange={(e) => setHours((e.target as HTMLSelectElement).value)}>
            <option value="24">the last day</option>
            <option value="168">the last 7 days</option>
            <option value="720">the last 30 days</option>
          </select>
        </label>
        {data &&
          (data[1].items.length === 0 ? (
            <p>None resolved in that time.</p>
          ) : (
            <AlertTable caption="Resolved alerts" alerts={data[1].items} resolved />
          ))}
      </Section>
    </>
  );
}
