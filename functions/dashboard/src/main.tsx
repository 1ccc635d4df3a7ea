import { type ComponentType, render } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import {
  ApiError,
  can,
  chooseNamespace,
  chosenNamespace,
  get,
  list,
  storedKey,
  storeKey,
  type WhoAmI,
} from "./api.js";
import { type LiveMode, startLive } from "./live.js";
import { AlertsPage } from "./pages/alerts.js";
import { AuditPage } from "./pages/audit.js";
import type { Live } from "./pages/live-props.js";
import { OverviewPage } from "./pages/overview.js";
import { SchedulesPage } from "./pages/schedules.js";
import { SubscriptionPage, SubscriptionsPage } from "./pages/subscriptions.js";
import { TaskPage } from "./pages/task.js";
import { TaskTypesPage } from "./pages/task-types.js";
import { TasksPage } from "./pages/tasks.js";
import { NotAllowed, useData } from "./ui.js";
import "./styles.css";

function useHash(): string {
  const [hash, setHash] = useState(location.hash || "#/");
  useEffect(() => {
    const onChange = () => setHash(location.hash || "#/");
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

function SignIn(props: { onSignedIn: (who: WhoAmI) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    storeKey(key.trim());
    try {
      props.onSignedIn(await get<WhoAmI>("/whoami"));
    } catch (e) {
      storeKey(null);
      setError(e instanceof ApiError ? e.message : "TME cannot be reached");
    }
  };
  return (
    <main class="signin">
      <h1>TME dashboard</h1>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          required
        />
        <button type="submit">Sign in</button>
        <p class="hint">The key stays in this browser tab only (session storage).</p>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

/**
 * Admin keys may look at any namespace (the API's ?namespace=, added to every call); the names
 * offered are those of the keys (GET /keys lists every namespace's).
 */
function NamespacePicker(props: { current: string; onChoose: (namespace: string) => void }) {
  const [draft, setDraft] = useState(props.current);
  const { data } = useData(() => list<{ namespace: string }>("/keys?limit=500"), []);
  const known = [...new Set([props.current, ...(data?.items.map((k) => k.namespace) ?? [])])].sort();
  return (
    <form
      class="namespace"
      onSubmit={(e) => {
        e.preventDefault();
        if (draft.trim()) props.onChoose(draft.trim());
      }}
    >
      <label for="namespace">Namespace</label>
      <input
        id="namespace"
        list="namespaces"
        size={12}
        value={draft}
        onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
      />
      <datalist id="namespaces">
        {known.map((n) => (
          <option key={n} value={n} />
        ))}
      </datalist>
      <button type="submit">Show</button>
    </form>
  );
}

interface PageSpec {
  path: string;
  title: string;
  opens: (who: WhoAmI) => boolean;
  show: ComponentType<{ live: Live; query: URLSearchParams }>;
  /** The page of one item of this list (#/task/<id> beside #/tasks). */
  item?: { path: string; show: ComponentType<{ id: string; live: Live }> };
}

/**
 * The pages: what a key needs to open each (the navigation shows only those it may), and what
 * each shows. An unknown path shows the overview.
 */
const PAGES: PageSpec[] = [
  { path: "", title: "Overview", opens: (who) => can(who, "tasks:read"), show: OverviewPage },
  {
    path: "tasks",
    title: "Tasks",
    opens: (who) => can(who, "tasks:read"),
    show: ({ live, query }) => <TasksPage key={query.toString()} live={live} query={query} />,
    item: { path: "task", show: TaskPage },
  },
  { path: "types", title: "Task types", opens: (who) => can(who, "tasks:read"), show: TaskTypesPage },
  {
    path: "schedules",
    title: "Schedules",
    opens: (who) => can(who, "tasks:read") || can(who, "schedules:write"),
    show: SchedulesPage,
  },
  {
    path: "subscriptions",
    title: "Subscriptions",
    opens: (who) => can(who, "events:write"),
    show: SubscriptionsPage,
    item: { path: "subscription", show: SubscriptionPage },
  },
  { path: "alerts", title: "Alerts", opens: (who) => can(who, "tasks:read"), show: AlertsPage },
  { path: "audit", title: "Audit", opens: (who) => can(who, "admin"), show: AuditPage },
];

function Page(props: { page: string; id: string | undefined; query: URLSearchParams; live: Live }) {
  const { page, id, query, live } = props;
  const List = PAGES.find((p) => p.path === page)?.show;
  if (List) return <List live={live} query={query} />;
  const Item = PAGES.find((p) => p.item?.path === page)?.item?.show;
  if (Item) return id ? <Item id={id} live={live} /> : null;
  return <OverviewPage live={live} />;
}

/** Re-read at most this often however many events arrive: a burst of events is one refresh. */
const REFRESH_MS = 250;
const SLOW_REFRESH_MS = 5000;

function App() {
  const [who, setWho] = useState<WhoAmI | null>(null);
  const [checked, setChecked] = useState(false);
  const [mode, setMode] = useState<LiveMode>("connecting");
  const [tick, setTick] = useState(0);
  const [slowTick, setSlowTick] = useState(0);
  const [namespace, setNamespace] = useState<string | null>(chosenNamespace());
  const hash = useHash();

  useEffect(() => {
    if (!storedKey()) return setChecked(true);
    get<WhoAmI>("/whoami")
      .then(setWho)
      .catch(() => storeKey(null))
      .finally(() => setChecked(true));
  }, []);
  useEffect(() => {
    if (!who) return;
    let pending: number | undefined;
    const stop = startLive(() => {
      pending ??= window.setTimeout(() => {
        pending = undefined;
        setTick((t) => t + 1);
      }, REFRESH_MS);
    }, setMode);
    return () => {
      stop();
      window.clearTimeout(pending);
    };
  }, [who, namespace]);
  useEffect(() => {
    if (!who) return;
    const timer = window.setInterval(() => setSlowTick((t) => t + 1), SLOW_REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [who]);
  const signOut = useCallback(() => {
    storeKey(null);
    setWho(null);
    setNamespace(null);
  }, []);
  const choose = (chosen: string) => {
    const other = who && chosen !== who.namespace ? chosen : null;
    chooseNamespace(other);
    setNamespace(other);
  };

  if (!checked) return null;
  if (!who) return <SignIn onSignedIn={setWho} />;
  const [route = "", search = ""] = hash.slice(1).split("?");
  const [, page = "", id] = route.split("/");
  const current = PAGES.find((p) => p.path === page || p.item?.path === page) ?? PAGES[0]!;
  const open = PAGES.filter((p) => p.opens(who));
  // A key that may not read tasks starts on the first page it may open.
  const shown = current.path === "" && !current.opens(who) && open[0] ? open[0] : current;
  const live = { tick, slowTick, who };
  return (
    <>
      <button type="button" class="skip" onClick={skipToContent}>
        Skip to content
      </button>
      <header>
        <nav aria-label="Main">
          {open.map((p) => (
            <a key={p.path} href={`#/${p.path}`} aria-current={p === shown ? "page" : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <p class="who">
          <span>
            {who.name} · {who.namespace} · {who.scopes.join(", ")}
          </span>
          {who.admin && <NamespacePicker current={namespace ?? who.namespace} onChoose={choose} />}
          <span class="mode" data-mode={mode}>
            {mode === "streaming"
              ? "live: streaming"
              : mode === "polling"
                ? "live: polling every 2 s"
                : "connecting"}
          </span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </p>
      </header>
      <main id="content" tabIndex={-1} key={namespace ?? who.namespace}>
        {namespace !== null && <p class="hint">Showing namespace {namespace}, not the key's own.</p>}
        {shown.opens(who) ? (
          <Page
            page={shown === current ? page : shown.path}
            id={id === undefined ? undefined : decodeURIComponent(id)}
            query={new URLSearchParams(search)}
            live={live}
          />
        ) : (
          <NotAllowed needs={`a scope that opens ${shown.title}`} />
        )}
      </main>
    </>
  );
}

/** The hash routes the pages, so skipping to the content moves the focus instead of navigating. */
function skipToContent() {
  document.getElementById("content")?.focus();
}

render(<App />, document.getElementById("app")!);
