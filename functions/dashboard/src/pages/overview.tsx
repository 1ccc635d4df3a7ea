import { useEffect, useState } from "preact/hooks";
import { get, list } from "../api.js";
import { ThroughputChart } from "../chart.js";
import { ErrorLine, Section, When } from "../ui.js";
import { type Live, Progress, STATUSES, type Task } from "./live-props.js";

interface Stats {
  counts: Record<string, number>;
  finished_per_minute: Array<{ minute: string; succeeded: number; failed: number }>;
  failure_rate_last_hour: number | null;
  queue_depth: number;
  oldest_queued_age_seconds: number | null;
}

export function OverviewPage(props: { live: Live }) {
  const [stats, setStats] = useState<Stats | null>(null);
  const [running, setRunning] = useState<Task[]>([]);
  const [failures, setFailures] = useState<Task[]>([]);
  const [alerts, setAlerts] = useState<Array<{ id: string; message: string; raised_at: string }>>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    Promise.all([
      get<Stats>("/stats"),
      list<Task>("/tasks?status=running&limit=20"),
      list<Task>("/tasks?status=failed,timed_out&limit=10"),
      list<{ id: string; message: string; raised_at: string }>("/alerts?status=open&limit=10"),
    ])
      .then(([s, r, f, a]) => {
        setStats(s);
        setRunning(r.items);
        setFailures(f.items);
        setAlerts(a.items);
        setError(null);
      })
      .catch((e: Error) => setError(e.message));
  }, [props.live.tick]);
  return (
    <>
      <h1>Overview</h1>
      <ErrorLine error={error} />
      {stats && (
        <>
          <Section id="counts" title="Tasks by status">
            <dl class="counts">
              {STATUSES.map((s) => (
                <div key={s} data-status={s}>
                  <dt>{s}</dt>
                  <dd data-testid={`count-${s}`}>{stats.counts[s] ?? 0}</dd>
                </div>
              ))}
            </dl>
            <dl class="counts">
              <div>
                <dt>queue depth</dt>
                <dd>{stats.queue_depth}</dd>
              </div>
              <div>
                <dt>oldest queued</dt>
                <dd>
                  {stats.oldest_queued_age_seconds === null ? "—" : `${stats.oldest_queued_age_seconds} s`}
                </dd>
              </div>
              <div>
                <dt>failure rate (1 h)</dt>
                <dd>
                  {stats.failure_rate_last_hour === null
                    ? "—"
                    : `${(stats.failure_rate_last_hour * 100).toFixed(1)} %`}
                </dd>
              </div>
            </dl>
          </Section>
          <Section id="tp" title="Finished per minute, last hour">
            <ThroughputChart points={stats.finished_per_minute} />
          </Section>
        </>
      )}
      <Section id="running" title="Running">
        {running.length === 0 ? (
          <p>Nothing is running.</p>
        ) : (
          <ul class="plain">
            {running.map((t) => (
              <li key={t.id}>
                <a href={`#/task/${encodeURIComponent(t.id)}`}>{t.name}</a> <Progress task={t} />{" "}
                {t.progress?.message ?? ""}
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section id="fail" title="Recent failures">
        {failures.length === 0 ? (
          <p>No failures.</p>
        ) : (
          <ul class="plain">
            {failures.map((t) => (
              <li key={t.id}>
                <a href={`#/task/${encodeURIComponent(t.id)}`}>{t.name}</a> {t.status}: {t.error ?? ""}
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section id="alerts" title="Open alerts">
        {alerts.length === 0 ? (
          <p>No open alerts.</p>
        ) : (
          <ul class="plain">
            {alerts.map((a) => (
              <li key={a.id}>
                <When at={a.raised_at} />: {a.message}
              </li>
            ))}
          </ul>
        )}
      </Section>
    </>
  );
}
