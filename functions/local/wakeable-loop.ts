/** A background loop's body: one pass of work, told whether a wake-up came in while it ran. */
export type LoopPass = (loop: { readonly stopped: boolean; readonly wokenSince: boolean }) => Promise<void>;

export interface WakeableLoop {
  /** Runs a pass now, or, if one is running, one more pass right after it. */
  wake(): void;
  readonly stopped: boolean;
  /** No pass starts after this; resolves when the running one (and its follow-ups) ended. */
  stop(): Promise<void>;
}

/**
 * One pass at a time, and no wake-up lost: NOTIFY handlers, poll timers and finished work all
 * call wake(); wake-ups that arrive during a pass collapse into a single pass after it, so work
 * announced while a pass was already past the point of seeing it is still picked up. A pass
 * may check `wokenSince` to return early and let that next pass start. A pass that throws is
 * reported to onError and does not end the loop.
 */
export function wakeableLoop(pass: LoopPass, onError: (error: unknown) => void): WakeableLoop {
  let running: Promise<void> | undefined;
  // Set synchronously (not when `running` settles), so a wake-up in the same tick as a pass's
  // start or end is never dropped.
  let busy = false;
  let again = false;
  let stopped = false;
  const state = {
    get stopped() {
      return stopped;
    },
    get wokenSince() {
      return again;
    },
  };

  const passes = async () => {
    do {
      again = false;
      try {
        await pass(state);
      } catch (error) {
        onError(error);
      }
    } while (again && !stopped);
    busy = false;
  };

  return {
    wake() {
      if (stopped) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      running = passes();
    },
    get stopped() {
      return stopped;
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}
