import type { AppContext } from "../context.js";
import type { BackgroundService } from "./runtime.js";
import { wakeableLoop } from "./wakeable-loop.js";

/** How often the local runtime forgets expired Idempotency-Key records (the cloud: each reaper run). */
const PRUNE_EVERY_MS = 10 * 60_000;

/** Forgets Idempotency-Key records past their 24 hours, at start and every 10 minutes. */
export function securityMaintenance(app: AppContext): BackgroundService {
  let timer: NodeJS.Timeout | undefined;
  const loop = wakeableLoop(
    async () => {
      const pruned = await app.idempotency.pruneExpired();
      if (pruned > 0) app.logger.info({ pruned }, "expired idempotency keys pruned");
    },
    (error) => app.logger.warn({ err: error }, "idempotency key pruning failed"),
  );
  return {
    name: "security-maintenance",
    start() {
      loop.wake();
      timer = setInterval(() => loop.wake(), PRUNE_EVERY_MS);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await loop.stop();
    },
  };
}
