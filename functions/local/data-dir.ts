import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { InternalError } from "../core/errors.js";

/** TME_DATA_DIR cannot be written; the message says why and what to do, in one line. */
export class DataDirUnusable extends InternalError {
  override name = "DataDirUnusable";
}

const REASONS: Record<string, string> = {
  EROFS: "it is on a read-only file system",
  ENOSPC: "its disk is full",
  EDQUOT: "its disk quota is used up",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTDIR: "a part of its path is a file",
};

/**
 * Proves the data directory takes a write before anything is started in it. The embedded
 * PostgreSQL, the encryption key and the first admin key live there; finding out from initdb or
 * from postgres' own log, halfway through a start, tells an operator much less.
 */
export function assertDataDirWritable(dataDir: string): void {
  const probe = path.join(dataDir, `.write-test-${process.pid}`);
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(probe, "TME checks that its data directory takes writes\n");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    const reason = REASONS[code] ?? (error as Error).message;
    throw new DataDirUnusable(
      `the data directory ${dataDir} cannot be written (${reason}): TME keeps its database, keys and ` +
        "state there; make it writable and free some space, or set TME_DATA_DIR to another directory",
    );
  } finally {
    rmSync(probe, { force: true });
  }
}
