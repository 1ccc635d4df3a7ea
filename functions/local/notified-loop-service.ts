import type { PostgresListener } from "../adapters/postgres/listener.js";
import type { BackgroundService } from "./runtime.js";
import type { WakeableLoop } from "./wakeable-loop.js";

/**
 * A background service that runs `loop` whenever a NOTIFY arrives on `channel` (and after every
 * reconnect of its listener, since notifications sent while it was away are lost), once at
 * start, and whatever else `timers` arranges. Stopping stops `loop` (it lets the running pass
 * end), clears the timers and closes the listener.
 */
export function notifiedLoopService(
  name: string,
  listener: PostgresListener,
  channel: string,
  loop: Pick<WakeableLoop, "stop">,
  wake: () => void,
  timers: { start?: () => void; stop: () => void },
): BackgroundService {
  return {
    name,
    async start() {
      listener.on(channel, wake).onReconnect(wake);
      await listener.start();
      timers.start?.();
      wake();
    },
    async stop() {
      const stopped = loop.stop();
      timers.stop();
      await listener.stop();
      await stopped;
    },
  };
}
