import type { Keyset, KeysetPage } from "../paging.js";

/**
 * The audit log: one entry per changing call and per refused authentication. Entries are
 * appended to a hash chain (see migrations/0036_audit_chain.sql); nothing here knows how.
 */
/** The namespace column of rows that belong to none (a refused authentication, an archive). */
export const GLOBAL_NAMESPACE = "*";

export type AuditOutcome = "ok" | "failed" | "refused" | "forbidden";

export interface AuditEntry {
  /** The key that made the call; null when authentication was refused. */
  actor: string | null;
  actor_name: string | null;
  namespace: string;
  /** "task.create", "key.revoke", "auth.refused", ... */
  action: string;
  target: string | null;
  request_id: string | null;
  source_ip: string | null;
  outcome: AuditOutcome;
  /** The HTTP status answered. */
  status: number | null;
  /** Never a secret: the pipeline puts only the route and the error code here. */
  details?: Record<string, unknown>;
}

/** Port: appends entries to the chain, durably, before it resolves. */
export interface AuditSink {
  append(entry: AuditEntry): Promise<void>;
}

/** A stored entry: the entry as appended, with its place and hashes in the chain. */
export interface AuditRow extends Omit<AuditEntry, "details"> {
  id: string;
  seq: number;
  occurred_at: Date;
  details: Record<string, unknown>;
  prev_hash: string | null;
  hash: string;
}

export interface AuditFilter {
  namespace?: string;
  actor?: string;
  /** Exact, or a prefix such as "task.*". */
  action?: string;
  target?: string;
  outcome?: string;
  since?: Date;
  until?: Date;
  limit: number;
  after?: Keyset;
}

/** Port: reads the chain, newest first (GET /audit). */
export interface AuditReader {
  list(filter: AuditFilter): Promise<KeysetPage<AuditRow>>;
}

/** What `tme audit verify` and the tests read: the first row that breaks the chain, if any. */
export interface AuditVerification {
  ok: boolean;
  /** Rows checked. */
  checked: number;
  /** The first broken row's seq and why. */
  broken?: { seq: number; id: string | null; reason: string };
  /** Where verification started: 1, or the row after the newest archived segment. */
  fromSeq: number;
  headSeq: number;
}
