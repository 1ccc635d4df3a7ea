import { hostname } from "node:os";
import { PostgresWorkerRegistry } from "../adapters/postgres/worker-registry.js";
import type { AppContext } from "../context.js";
import { LeaseDeadline, leaseMarginMs } from "../core/tasks/lease-deadline.js";

/**
 * This process's row in `workers` while its pool runs: registered at start, a heartbeat every
 * worker.presence_heartbeat_seconds, removed on a clean stop. Other processes take it for dead
 * once it has been silent for worker.presence_timeout_seconds and take its running tasks back at
 * once (PostgresTaskQueue.reapDeadWorkers), so `lease` is the deadline its attempts keep on
 * their own clock (and their commands' supervisors on theirs): renewed only by a heartbeat that
 * found the row, it runs out kill grace + 1 s before anyone may take over.
 */
export function workerPresence(
  app: AppContext,
  options: {
    workerId: string;
    slots: number;
    /** The row was gone: another process took this one for dead and its tasks back. */
    onDeclaredDead: () => void;
  },
) {
  const worker = app.config.app.worker;
  const registry = new PostgresWorkerRegistry(app.db);
  const timeoutMs = worker.presence_timeout_seconds * 1000;
  const lease = new LeaseDeadline(timeoutMs, leaseMarginMs(worker.kill_grace_seconds), Date.now());
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> | undefined;

  const registration = {
    id: options.workerId,
    host: hostname(),
    pid: process.pid,
    slots: options.slots,
    deadAfterSeconds: worker.presence_timeout_seconds,
  };

  const beat = async () => {
    const requestedAt = Date.now();
    try {
      if (await registry.beat(options.workerId)) return lease.renewed(requestedAt);
      app.logger.warn(
        { worker_id: options.workerId },
        "this worker was taken for dead (no heartbeat in time) and its tasks were taken back; registering again",
      );
      options.onDeclaredDead();
      await registry.register(registration);
      lease.renewed(requestedAt);
    } catch (error) {
      // The database is out of reach: the next beat tries again; if none lands in time the
      // attempts stop on their own before another process may take them over.
      app.logger.warn({ err: error }, "worker heartbeat failed");
    }
  };

  return {
    /** The presence's deadline for attempts (AttemptDeps.workerLease). */
    lease,
    async start() {
      const requestedAt = Date.now();
      await registry.register(registration);
      lease.renewed(requestedAt);
      timer = setInterval(() => {
        // One beat at a time: a beat stuck on a cut connection must not pile up more.
        beating ??= beat().finally(() => {
          beating = undefined;
        });
      }, worker.presence_heartbeat_seconds * 1000);
    },
    /** After the pool has drained: nothing of this process runs any more. */
    async stop() {
      clearInterval(timer);
      await beating;
      await registry
        .leave(options.workerId)
        .catch((error) => app.logger.warn({ err: error }, "could not remove this worker's row"));
    },
  };
}
