import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api.js";

/** Small pieces every page shares: loading with an error line, action results, time, paging. */

export function messageOf(error: unknown): string {
  return error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);
}

/** Runs `load` when a dependency changes (the live tick among them); keeps the last good data. */
export function useData<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [again, setAgain] = useState(0);
  useEffect(() => {
    let current = true;
    load()
      .then((value) => {
        if (!current) return;
        setData(value);
        setError(null);
      })
      .catch((e) => current && setError(messageOf(e)));
    return () => {
      current = false;
    };
  }, [...deps, again]);
  return { data, error, reload: () => setAgain((n) => n + 1) };
}

export interface Outcome {
  ok: boolean;
  text: string;
}

/**
 * An action button's result: what happened, or the API's message when it was refused. `call`
 * returns the sentence to show; the page is re-read afterwards either way.
 */
export function useAction(after: () => void) {
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const run = async (what: string, call: () => Promise<string>) => {
    try {
      setOutcome({ ok: true, text: await call() });
    } catch (e) {
      setOutcome({ ok: false, text: `${what} refused: ${messageOf(e)}` });
    }
    after();
  };
  return [outcome, run] as const;
}

export function OutcomeLine(props: { outcome: Outcome | null }) {
  if (!props.outcome) return null;
  return (
    <p role="status" class={props.outcome.ok ? "ok" : "error"}>
      {props.outcome.text}
    </p>
  );
}

export function ErrorLine(props: { error: string | null }) {
  if (!props.error) return null;
  return (
    <p role="alert" class="error">
      {props.error}
    </p>
  );
}

export function When(props: { at: string | null | undefined }) {
  if (!props.at) return <>—</>;
  return <time dateTime={props.at}>{new Date(props.at).toLocaleString()}</time>;
}

/** Cursor paging: the cursors of the pages before this one, so Previous works too. */
export function usePager() {
  const [cursors, setCursors] = useState<string[]>([]);
  return {
    cursor: cursors[cursors.length - 1],
    query: (params: Record<string, string | undefined>) => {
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries({ ...params, cursor: cursors[cursors.length - 1] }))
        if (v) query.set(k, v);
      return query.toString();
    },
    reset: () => setCursors([]),
    controls: (next: string | null | undefined) => (
      <p class="pager">
        <button
          type="button"
          disabled={cursors.length === 0}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          Previous page
        </button>
        <button type="button" disabled={!next} onClick={() => next && setCursors([...cursors, next])}>
          Next page
        </button>
      </p>
    ),
  };
}

/**
 * A table that scrolls sideways inside itself on a narrow screen rather than widening the page;
 * the scrolling box is focusable and named, so it scrolls from the keyboard too.
 */
export function Table(props: { caption: string; head: string[]; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard (WCAG 2.1.1)
    <section class="table-wrap" aria-label={props.caption} tabIndex={0}>
      <table>
        <caption class="visually-hidden">{props.caption}</caption>
        <thead>
          <tr>
            {props.head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
    </section>
  );
}

/** A part of a page named by its heading, so assistive technology lists it by that name. */
export function Section(props: { id: string; title: string; children: ComponentChildren }) {
  return (
    <section aria-labelledby={`${props.id}-h`}>
      <h2 id={`${props.id}-h`}>{props.title}</h2>
      {props.children}
    </section>
  );
}

/** Shown instead of a page the key's scopes do not open. */
export function NotAllowed(props: { needs: string }) {
  return (
    <>
      <h1>Not available with this key</h1>
      <p>This page needs a key with {props.needs}.</p>
    </>
  );
}
