import type { DatabaseProbe } from "../../core/health/health.js";
import type { Queryable } from "./database.js";

/** The health check's probe: one trivial query; any failure (refused, timed out) is "no". */
export function postgresDatabaseProbe(db: Queryable): DatabaseProbe {
  return {
    answers: () =>
      db
        .query("SELECT 1")
        .then(() => true)
        .catch(() => false),
  };
}
