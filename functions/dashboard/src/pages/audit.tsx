import { useState } from "preact/hooks";
import type { AuditEntry } from "../../../core/audit/audit.js";
import { can, list } from "../api.js";
import { ErrorLine, NotAllowed, Table, useData, usePager, When } from "../ui.js";
import type { Live } from "./live-props.js";

/** A row of GET /audit: an entry (core/audit/audit.ts) with its place in the chain, times as text. */
type AuditRow = Omit<AuditEntry, "details"> & { id: string; seq: number; occurred_at: string };

const FIELDS = ["actor", "action", "target", "outcome", "since", "until"] as const;
type Filters = Partial<Record<(typeof FIELDS)[number], string>>;

/** A datetime-local value (the browser's zone) as the API's ISO 8601 instant. */
function instant(local: string | undefined): string | undefined {
  return local ? new Date(local).toISOString() : undefined;
}

/** GET /audit (admin keys): the hash-chained log of every changing call, filtered. */
export function AuditPage(props: { live: Live }) {
  const allowed = can(props.live.who, "admin");
  const [draft, setDraft] = useState<Filters>({});
  const [filters, setFilters] = useState<Filters>({});
  const pager = usePager();
  const { data, error } = useData(
    async () =>
      allowed
        ? list<AuditRow>(
            `/audit?${pager.query({
              limit: "50",
              ...filters,
              since: instant(filters.since),
              until: instant(filters.until),
            })}`,
          )
        : null,
    [filters, pager.cursor, allowed],
  );
  if (!allowed) return <NotAllowed needs="the admin scope" />;
  const field = (
    name: (typeof FIELDS)[number],
    label: string,
    type: "text" | "datetime-local" = "text",
    hint?: string,
  ) => {
    const common = {
      id: `audit-${name}`,
      name,
      value: draft[name] ?? "",
      placeholder: hint,
      onInput: (e: Event) => setDraft({ ...draft, [name]: (e.target as HTMLInputElement).value }),
    };
    return (
      <div class="field">
        <label for={common.id}>{label}</label>
        {type === "text" ? <input type="text" {...common} /> : <input type="datetime-local" {...common} />}
      </div>
    );
  };
  return (
    <>
      <h1>Audit log</h1>
      <form
        class="filters"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          pager.reset();
          setFilters({ ...draft });
        }}
      >
        {field("actor", "Actor (key id)")}
        {field("action", "Action", "text", "task.* or task.create")}
        {field("target", "Target")}
        <label>
          Outcome
          <select
            name="outcome"
            value={draft.outcome ?? ""}
            onChange={(e) => setDraft({ ...draft, outcome: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {["ok", "failed", "refused", "forbidden"].map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </label>
        {field("since", "Since", "datetime-local")}
        {field("until", "Until", "datetime-local")}
        <button type="submit">Apply filters</button>
      </form>
      <ErrorLine error={error} />
      {data && data.items.length === 0 && <p>No audit rows match.</p>}
      {data && data.items.length > 0 && (
        <Table
          caption="Audit rows, newest first"
          head={["When", "Actor", "Namespace", "Action", "Target", "Outcome", "Request", "From"]}
        >
          {data.items.map((r) => (
            <tr key={r.id} data-audit-seq={r.seq}>
              <td>
                <When at={r.occurred_at} />
              </td>
              <td>{r.actor_name ? `${r.actor_name} (${r.actor})` : (r.actor ?? "—")}</td>
              <td>{r.namespace}</td>
              <td>{r.action}</td>
              <td class="url">{r.target ?? "—"}</td>
              <td class="status" data-status={r.outcome === "ok" ? "succeeded" : "failed"}>
                {r.outcome}
                {r.status === null ? "" : ` (${r.status})`}
              </td>
              <td class="url">{r.request_id ?? "—"}</td>
              <td>{r.source_ip ?? "—"}</td>
            </tr>
          ))}
        </Table>
      )}
      {pager.controls(data?.next)}
    </>
  );
}
