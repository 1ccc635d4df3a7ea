import { describe, expect, it } from "vitest";
import { wakeableLoop } from "../../functions/local/wakeable-loop.js";

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

async function until(condition: () => boolean) {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met within 2 s");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

describe("wakeableLoop", () => {
  it("runs one pass at a time and folds wake-ups during a pass into one more pass", async () => {
    const first = gate();
    let passes = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const loop = wakeableLoop(
      async () => {
        passes++;
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (passes === 1) await first.opened;
        concurrent--;
      },
      () => {},
    );
    loop.wake();
    loop.wake();
    loop.wake();
    expect(passes).toBe(1);
    first.open();
    await until(() => passes === 2 && concurrent === 0);
    await loop.stop();
    expect(passes).toBe(2);
    expect(maxConcurrent).toBe(1);
  });

  it("tells a pass that it was woken while it ran", async () => {
    const seen: boolean[] = [];
    const loop = wakeableLoop(
      async (pass) => {
        if (seen.length === 0) loop.wake();
        seen.push(pass.wokenSince);
      },
      () => {},
    );
    loop.wake();
    await until(() => seen.length === 2);
    await loop.stop();
    expect(seen).toEqual([true, false]);
  });

  it("reports a failing pass and keeps going; after stop() nothing runs", async () => {
    const errors: unknown[] = [];
    let passes = 0;
    const loop = wakeableLoop(
      async () => {
        passes++;
        if (passes === 1) throw new Error("boom");
      },
      (error) => errors.push(error),
    );
    loop.wake();
    await until(() => errors.length === 1);
    loop.wake();
    await until(() => passes === 2);
    expect(passes).toBe(2);
    await loop.stop();
    expect(loop.stopped).toBe(true);
    loop.wake();
    expect(passes).toBe(2);
  });
});
