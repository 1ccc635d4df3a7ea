import { isConnectionLoss, isStorageFailure } from "./database.js";

export interface GroupCommitOptions {
  /** Items per write at most: bounds a statement's size under a burst. */
  maxBatch: number;
  /**
   * Writes in flight at once. More than one lets the next batch travel and parse while the one
   * before it commits; the audit chain's lock still orders the commits themselves.
   */
  maxInFlight: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: items submitted while a write is under way (or in the same turn of the event
 * loop) go into one write, so N concurrent callers cost one round trip and one commit, not N,
 * and each caller is answered only once its own item is committed. A batch that fails for a
 * reason of its data (not a lost connection, not a full disk) is written again one item at a
 * time, so one bad item fails only its own caller.
 *
 * Reads use it the same way (one query for the key checks or task lookups of concurrent
 * requests): an item joins only a statement not yet sent, so it never sees a state older than
 * its own arrival (a key revoked before the request came is refused).
 *
 * `write` gets the items in submission order and returns one result per item, in that order.
 */
export class GroupCommit<I, O> {
  private pending: Array<Pending<I, O>> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly write: (items: I[]) => Promise<O[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /**
   * The first item of an idle writer waits for the end of this turn of the event loop
   * (setImmediate): requests parsed from the same socket reads join it at no added latency.
   */
  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.startWrites();
    });
  }

  private startWrites(): void {
    while (this.pending.length > 0 && this.inFlight < this.options.maxInFlight) {
      const batch = this.pending.splice(0, this.options.maxBatch);
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        if (this.pending.length > 0) this.schedule();
      });
    }
  }

  private async flush(batch: Array<Pending<I, O>>): Promise<void> {
    let results: O[];
    try {
      results = await this.write(batch.map((p) => p.item));
    } catch (error) {
      if (batch.length === 1 || isConnectionLoss(error) || isStorageFailure(error)) {
        for (const p of batch) p.reject(error);
        return;
      }
      // Some item broke the statement; alone, each succeeds or fails on its own.
      await Promise.all(
        batch.map(async (p) => {
          try {
            const [result] = await this.write([p.item]);
            p.resolve(result!);
          } catch (itemError) {
            p.reject(itemError);
          }
        }),
      );
      return;
    }
    for (const [i, p] of batch.entries()) p.resolve(results[i]!);
  }
}
