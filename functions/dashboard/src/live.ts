import { inNamespace, storedKey } from "./api.js";

/** While streaming, re-read this often anyway (what the stream does not carry). */
const CATCH_UP_MS = 5000;

export type LiveMode = "connecting" | "streaming" | "polling";

/**
 * Tells the views when to re-read: on each event of GET /stream (read with fetch, since
 * EventSource cannot send the key in a header) and every 5 s besides, or every 2 s when the
 * runtime does not stream.
 */
export function startLive(onChange: (event: unknown) => void, onMode: (mode: LiveMode) => void): () => void {
  let stopped = false;
  let poll: number | undefined;
  let catchUp: number | undefined;
  const controller = new AbortController();
  const startPolling = () => {
    if (stopped || poll !== undefined) return;
    onMode("polling");
    poll = window.setInterval(() => onChange(null), 2000);
  };
  const stream = async () => {
    try {
      const response = await fetch(inNamespace("/stream"), {
        headers: { authorization: `Bearer ${storedKey() ?? ""}`, accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!response.ok || !response.body) return startPolling();
      onMode("streaming");
      // The stream carries task events only: schedules, deliveries and alerts change without one.
      catchUp ??= window.setInterval(() => onChange(null), CATCH_UP_MS);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data: "))
            .map((line) => line.slice(6))
            .join("\n");
          if (block.includes("event: task") && data) onChange(JSON.parse(data));
          end = buffer.indexOf("\n\n");
        }
      }
      // Dropped (a slow reader) or the server stopped: catch up, then reconnect.
      if (!stopped) {
        onChange(null);
        window.setTimeout(stream, 1000);
      }
    } catch {
      if (!stopped) startPolling();
    }
  };
  void stream();
  return () => {
    stopped = true;
    controller.abort();
    if (poll !== undefined) window.clearInterval(poll);
    if (catchUp !== undefined) window.clearInterval(catchUp);
  };
}
