/** Port: whether the database answers a query now. Postgres: adapters/postgres/database-probe.ts. */
export interface DatabaseProbe {
  answers(): Promise<boolean>;
}

/**
 * What GET /health says of the database. recovering: the embedded PostgreSQL died and is being
 * restarted; storage_full: it answers, but a write failed lately for want of disk.
 */
export const DATABASE_HEALTH = ["ok", "unreachable", "recovering", "storage_full"] as const;
export type DatabaseHealth = (typeof DATABASE_HEALTH)[number];

export interface HealthServices {
  databaseProbe: DatabaseProbe;
  /** Locally, the embedded server's supervisor state ("recovering" while it restarts). */
  databaseState?: () => string;
  /** Why the database cannot write (disk full or read-only), while that lasts. */
  storageProblem?: () => string | undefined;
}

/** Healthy when the database answers and can write; otherwise the reason, most telling first. */
export async function checkHealth(
  services: HealthServices,
): Promise<{ healthy: boolean; database: DatabaseHealth }> {
  const answers = await services.databaseProbe.answers();
  if (!answers) {
    return {
      healthy: false,
      database: services.databaseState?.() === "recovering" ? "recovering" : "unreachable",
    };
  }
  if (services.storageProblem?.() !== undefined) return { healthy: false, database: "storage_full" };
  return { healthy: true, database: "ok" };
}
