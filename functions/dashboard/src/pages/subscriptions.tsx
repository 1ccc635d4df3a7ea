import { can, get, list, post } from "../api.js";
import {
  ErrorLine,
  NotAllowed,
  OutcomeLine,
  Section,
  Table,
  useAction,
  useData,
  usePager,
  When,
} from "../ui.js";
import type { Live } from "./live-props.js";

interface Subscription {
  id: string;
  event_types: string[];
  callback_url: string;
  format: string;
  auth: { type: string };
  filter: { name?: string; labels?: Record<string, string> };
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: string | null;
  created_at: string;
}

interface Delivery {
  id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  trigger: string;
  status: string;
  response_status: number | null;
  latency_ms: number | null;
  error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  finished_at: string | null;
}

/** How many recent attempts the health figures are read from. */
const HEALTH_WINDOW = 100;

interface Health {
  attempts: number;
  successRate: number | null;
  lastError: Delivery | null;
}

/** Success rate among the recent finished attempts, and the newest attempt that failed. */
function healthOf(deliveries: Delivery[]): Health {
  const finished = deliveries.filter((d) => d.status !== "pending");
  const ok = finished.filter((d) => d.status === "succeeded").length;
  return {
    attempts: finished.length,
    successRate: finished.length ? ok / finished.length : null,
    lastError: deliveries.find((d) => d.status !== "succeeded" && d.status !== "pending") ?? null,
  };
}

function HealthCells(props: { health: Health }) {
  const { attempts, successRate, lastError } = props.health;
  return (
    <>
      <td data-testid="success-rate">
        {successRate === null ? "no attempts yet" : `${Math.round(successRate * 100)} % of ${attempts}`}
      </td>
      <td>
        {lastError ? (
          <>
            <When at={lastError.finished_at ?? lastError.created_at} />{" "}
            {lastError.error ?? `HTTP ${lastError.response_status}`}
          </>
        ) : (
          "none"
        )}
      </td>
    </>
  );
}

function describeAttempt(d: Delivery): string {
  const answer = d.response_status === null ? (d.error ?? "no answer") : `HTTP ${d.response_status}`;
  return `${d.status} (${answer}${d.latency_ms === null ? "" : `, ${d.latency_ms} ms`})`;
}

function sendTest(sub: Subscription): Promise<string> {
  return post<Delivery>(`/events/${encodeURIComponent(sub.id)}/test`).then(
    (d) => `test event to ${sub.callback_url}: ${describeAttempt(d)}`,
  );
}

/** GET /events: each subscription's delivery health, with a test event button. */
export function SubscriptionsPage(props: { live: Live }) {
  const allowed = can(props.live.who, "events:write");
  const pager = usePager();
  const { data, error, reload } = useData(async () => {
    if (!allowed) return null;
    const page = await list<Subscription>(`/events?${pager.query({ limit: "20" })}`);
    const health = await Promise.all(
      page.items.map((s) =>
        get<Delivery[]>(`/events/${encodeURIComponent(s.id)}/deliveries?limit=${HEALTH_WINDOW}`).then(
          healthOf,
        ),
      ),
    );
    return { ...page, health };
  }, [pager.cursor, props.live.slowTick, allowed]);
  const [outcome, run] = useAction(reload);
  if (!allowed) return <NotAllowed needs="the events:write scope" />;
  return (
    <>
      <h1>Subscriptions</h1>
      <p class="hint">Health is read from the last {HEALTH_WINDOW} delivery attempts of each subscription.</p>
      <ErrorLine error={error} />
      <OutcomeLine outcome={outcome} />
      {data && data.items.length === 0 && <p>No subscriptions.</p>}
      {data && data.items.length > 0 && (
        <Table
          caption="Subscriptions"
          head={["Callback URL", "Events", "State", "Success rate", "Last error", "Actions"]}
        >
          {data.items.map((s, i) => (
            <tr key={s.id} data-subscription-id={s.id}>
              <td class="url">
                <a href={`#/subscription/${encodeURIComponent(s.id)}`}>{s.callback_url}</a>
              </td>
              <td>{s.event_types.join(", ")}</td>
              <td class="state" data-state={s.enabled ? "enabled" : "disabled"}>
                {s.enabled ? (
                  s.failing_since ? (
                    <>
                      failing since <When at={s.failing_since} />
                    </>
                  ) : (
                    "enabled"
                  )
                ) : (
                  `disabled: ${s.disabled_reason ?? ""}`
                )}
              </td>
              <HealthCells health={data.health[i]!} />
              <td class="actions">
                <button
                  type="button"
                  aria-label={`Send test event to ${s.callback_url}`}
                  onClick={() => run("test event", () => sendTest(s))}
                >
                  Send test event
                </button>
                <a href={`#/subscription/${encodeURIComponent(s.id)}`}>Delivery log</a>
              </td>
            </tr>
          ))}
        </Table>
      )}
      {pager.controls(data?.next)}
    </>
  );
}

/** One subscription: its settings, health, and its delivery log with redeliver. */
export function SubscriptionPage(props: { id: string; live: Live }) {
  const allowed = can(props.live.who, "events:write");
  const pager = usePager();
  const path = `/events/${encodeURIComponent(props.id)}`;
  const { data, error, reload } = useData(async () => {
    if (!allowed) return null;
    const [sub, log, recent] = await Promise.all([
      get<Subscription>(path),
      list<Delivery>(`${path}/deliveries?${pager.query({ limit: "50" })}`),
      get<Delivery[]>(`${path}/deliveries?limit=${HEALTH_WINDOW}`),
    ]);
    return { sub, log, health: healthOf(recent) };
  }, [props.id, pager.cursor, props.live.slowTick, allowed]);
  const [outcome, run] = useAction(reload);
  if (!allowed) return <NotAllowed needs="the events:write scope" />;
  if (error && !data) return <ErrorLine error={error} />;
  if (!data) return <p>Loading…</p>;
  const { sub, log, health } = data;
  const redeliver = (d: Delivery) =>
    run("redeliver", async () => {
      const created = await post<Delivery>(`/deliveries/${encodeURIComponent(d.id)}/redeliver`);
      return `${d.event_type} ${d.event_id} queued again (attempt ${created.attempt})`;
    });
  const redeliverFailed = () =>
    run("redeliver failed", async () => {
      const result = await post<{ redelivered: number }>(`${path}/redeliver`);
      return `${result.redelivered} failed event(s) queued again`;
    });
  return (
    <>
      <h1>Subscription {sub.callback_url}</h1>
      <p class="actions">
        <button type="button" onClick={() => run("test event", () => sendTest(sub))}>
          Send test event
        </button>
        <button type="button" onClick={redeliverFailed}>
          Redeliver every failed event
        </button>
      </p>
      <ErrorLine error={error} />
      <OutcomeLine outcome={outcome} />
      <Section id="health" title="Health">
        <Table caption="Delivery health" head={["State", "Success rate", "Last error"]}>
          <tr>
            <td>{sub.enabled ? "enabled" : `disabled: ${sub.disabled_reason ?? ""}`}</td>
            <HealthCells health={health} />
          </tr>
        </Table>
        <dl class="fields">
          <dt>events</dt>
          <dd>{sub.event_types.join(", ")}</dd>
          <dt>format</dt>
          <dd>{sub.format}</dd>
          <dt>auth</dt>
          <dd>{sub.auth.type}</dd>
          <dt>filter</dt>
          <dd>{JSON.stringify(sub.filter)}</dd>
          <dt>created</dt>
          <dd>
            <When at={sub.created_at} />
          </dd>
        </dl>
      </Section>
      <Section id="log" title="Delivery log">
        {log.items.length === 0 ? (
          <p>No deliveries yet.</p>
        ) : (
          <Table
            caption="Delivery attempts, newest first"
            head={["When", "Event", "Trigger", "Attempt", "Result", "Next attempt", "Action"]}
          >
            {log.items.map((d) => (
              <tr key={d.id} data-delivery-id={d.id}>
                <td>
                  <When at={d.finished_at ?? d.created_at} />
                </td>
                <td>{d.event_type}</td>
                <td>{d.trigger}</td>
                <td>{d.attempt}</td>
                <td class="status" data-status={d.status}>
                  {describeAttempt(d)}
                </td>
                <td>
                  <When at={d.next_attempt_at} />
                </td>
                <td>
                  <button
                    type="button"
                    disabled={d.status === "pending" || d.status === "retrying"}
                    aria-label={`Redeliver ${d.event_type} ${d.event_id}`}
                    onClick={() => redeliver(d)}
                  >
                    Redeliver
                  </button>
                </td>
              </tr>
            ))}
          </Table>
        )}
        {pager.controls(log.next)}
      </Section>
    </>
  );
}
