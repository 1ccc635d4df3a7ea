import { render } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, get, storedKey, storeKey, type WhoAmI } from "./api.js";
import { type LiveMode, startLive } from "./live.js";
import { OverviewPage } from "./pages/overview.js";
import { TaskPage } from "./pages/task.js";
import { TasksPage } from "./pages/tasks.js";
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

function App() {
  const [who, setWho] = useState<WhoAmI | null>(null);
  const [checked, setChecked] = useState(false);
  const [mode, setMode] = useState<LiveMode>("connecting");
  const [tick, setTick] = useState(0);
  const [lastEvent, setLastEvent] = useState<unknown>(null);
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
    return startLive((event) => {
      setLastEvent(event);
      setTick((t) => t + 1);
    }, setMode);
  }, [who]);
  const signOut = useCallback(() => {
    storeKey(null);
    setWho(null);
  }, []);

  if (!checked) return null;
  if (!who) return <SignIn onSignedIn={setWho} />;
  const [, page, id] = hash.split("/");
  const live = { tick, lastEvent, who };
  return (
    <>
      <header>
        <nav aria-label="Main">
          <a href="#/" aria-current={!page ? "page" : undefined}>
            Overview
          </a>
          <a href="#/tasks" aria-current={page === "tasks" || page === "task" ? "page" : undefined}>
            Tasks
          </a>
        </nav>
        <p class="who">
          <span>
            {who.name} · {who.namespace} · {who.scopes.join(", ")}
          </span>
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
      <main>
        {page === "tasks" ? (
          <TasksPage live={live} />
        ) : page === "task" && id ? (
          <TaskPage id={decodeURIComponent(id)} live={live} />
        ) : (
          <OverviewPage live={live} />
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
