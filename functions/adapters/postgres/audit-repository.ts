import { createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import {
  type AuditEntry,
  type AuditFilter,
  type AuditReader,
  type AuditRow,
  type AuditSink,
  type AuditVerification,
  GLOBAL_NAMESPACE,
} from "../../core/audit/audit.js";
import type { Queryable } from "./database.js";
import { GroupCommit } from "./group-commit.js";
import { type KeysetPage, keysetPage } from "./keyset.js";

/** Appends entries in one statement: audit_append() chains them under the chain head's lock. */
export async function appendAudit(db: Queryable, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.query("SELECT audit_append($1::jsonb)", [JSON.stringify(entries)]);
}

/** Audit rows written on `db` as they come: inside a transaction they commit with its change. */
export class AuditAppender implements AuditSink {
  constructor(private readonly db: Queryable) {}

  append(entry: AuditEntry): Promise<void> {
    return appendAudit(this.db, [entry]);
  }
}

/**
 * Group commit for audit rows written outside a request's own transaction: every entry that
 * arrives while a batch is being written goes into the next one, so N concurrent calls cost
 * one statement, not N, and each caller still waits until its row is committed.
 */
export class BatchingAuditWriter implements AuditSink {
  private readonly commits: GroupCommit<AuditEntry, void>;

  constructor(db: Queryable) {
    // One write at a time: the chain head's lock would serialise more anyway.
    this.commits = new GroupCommit<AuditEntry, void>(
      async (entries) => {
        await appendAudit(db, entries);
        return entries.map(() => undefined);
      },
      { maxBatch: 500, maxInFlight: 1 },
    );
  }

  append(entry: AuditEntry): Promise<void> {
    return this.commits.submit(entry);
  }
}

const ROW_COLUMNS = `id::text AS id, seq, occurred_at, actor, actor_name, namespace, action, target,
  request_id, source_ip, outcome, status, details, encode(prev_hash, 'hex') AS prev_hash,
  encode(hash, 'hex') AS hash`;

/** GET /audit: newest first, keyset pages over (occurred_at, id). */
export async function listAudit(db: Queryable, filter: AuditFilter): Promise<KeysetPage<AuditRow>> {
  const values: unknown[] = [];
  const where: string[] = [];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    where.push(sql.replace("?", `$${values.length}`));
  };
  if (filter.namespace !== undefined) add("namespace = ?", filter.namespace);
  if (filter.actor !== undefined) add("actor = ?", filter.actor);
  if (filter.action !== undefined) {
    // "task.*" lists every task action; otherwise the exact action.
    if (filter.action.endsWith(".*")) add("starts_with(action, ?)", filter.action.slice(0, -1));
    else add("action = ?", filter.action);
  }
  if (filter.target !== undefined) add("target = ?", filter.target);
  if (filter.outcome !== undefined) add("outcome = ?", filter.outcome);
  if (filter.since !== undefined) add("occurred_at >= ?", filter.since);
  if (filter.until !== undefined) add("occurred_at < ?", filter.until);
  return keysetPage<AuditRow>(
    db,
    {
      columns: ROW_COLUMNS,
      from: "audit_log",
      where: where.length > 0 ? where.join(" AND ") : "true",
      values,
      column: "occurred_at",
    },
    filter,
  );
}

export class PostgresAuditReader implements AuditReader {
  constructor(private readonly db: Queryable) {}

  list(filter: AuditFilter): Promise<KeysetPage<AuditRow>> {
    return listAudit(this.db, filter);
  }
}

/** Rows read per query while verifying: memory stays flat however long the chain is. */
const VERIFY_BATCH = 2000;

/**
 * Walks the chain in seq order and recomputes every hash: each row must follow the one before it
 * (seq + 1), carry its hash as prev_hash, and hash to what it holds; the last must be the chain
 * head. A chain whose start was archived begins at the newest archive's anchor (its last hash).
 */
export async function verifyAudit(db: Queryable): Promise<AuditVerification> {
  const anchor = (
    await db.query<{ through_seq: number; last_hash: string }>(
      `SELECT through_seq, encode(last_hash, 'hex') AS last_hash FROM audit_archives
       ORDER BY through_seq DESC LIMIT 1`,
    )
  ).rows[0];
  const head = (
    await db.query<{ seq: number; hash: string | null }>(
      `SELECT seq, encode(hash, 'hex') AS hash FROM audit_chain_head`,
    )
  ).rows[0] ?? { seq: 0, hash: null };
  const fromSeq = (anchor?.through_seq ?? 0) + 1;
  let expectedSeq = fromSeq;
  let previousHash: string | null = anchor?.last_hash ?? null;
  let checked = 0;
  const result = (broken?: AuditVerification["broken"]): AuditVerification => ({
    ok: broken === undefined,
    checked,
    broken,
    fromSeq,
    headSeq: head.seq,
  });
  for (;;) {
    const { rows } = await db.query<{
      id: string;
      seq: number;
      prev_hash: string | null;
      hash: string;
      expected: string;
    }>(
      `SELECT id::text AS id, seq, encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash,
         encode(audit_row_digest(prev_hash, seq, occurred_at, actor, actor_name, namespace, action, target,
           request_id, source_ip, outcome, status, details), 'hex') AS expected
       FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2`,
      [expectedSeq, VERIFY_BATCH],
    );
    for (const row of rows) {
      if (row.seq !== expectedSeq) {
        return result({
          seq: expectedSeq,
          id: null,
          reason: `row ${expectedSeq} is missing (the next row present is ${row.seq})`,
        });
      }
      if (row.prev_hash !== previousHash) {
        return result({
          seq: row.seq,
          id: row.id,
          reason: `prev_hash does not match the hash of row ${row.seq - 1}`,
        });
      }
      if (row.hash !== row.expected) {
        return result({
          seq: row.seq,
          id: row.id,
          reason: "its fields do not match its hash (the row was altered)",
        });
      }
      previousHash = row.hash;
      expectedSeq++;
      checked++;
    }
    if (rows.length < VERIFY_BATCH) break;
  }
  if (expectedSeq - 1 !== head.seq || previousHash !== head.hash) {
    return result({
      seq: expectedSeq,
      id: null,
      reason: `the chain ends at row ${expectedSeq - 1} but its head says ${head.seq}: rows were removed from the end`,
    });
  }
  return result();
}

export interface ArchiveResult {
  archived: number;
  throughSeq: number;
  file: string;
  sha256: string;
}

/**
 * Retention: writes every row older than `before` (a prefix of the chain, in seq order) to a
 * JSON Lines file, records the anchor (the last archived row's hash and the file's SHA-256) in
 * audit_archives, and deletes those rows, in one transaction. What remains still verifies,
 * starting from the anchor; the file verifies on its own (`tme audit verify --file`).
 */
export async function archiveAudit(
  db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> },
  before: Date,
  file: string,
): Promise<ArchiveResult | undefined> {
  return db.transaction(async (tx) => {
    // The chain head's lock keeps appends out while the segment is cut.
    await tx.query("SELECT seq FROM audit_chain_head FOR UPDATE");
    const last = (
      await tx.query<{ seq: number | null }>(
        `SELECT max(seq) AS seq FROM audit_log WHERE occurred_at < $1
           AND seq < coalesce((SELECT min(seq) FROM audit_log WHERE occurred_at >= $1), 9223372036854775807)`,
        [before],
      )
    ).rows[0]?.seq;
    if (last === null || last === undefined) return undefined;
    const out = createWriteStream(file, { flags: "wx", mode: 0o600 });
    const digest = createHash("sha256");
    let count = 0;
    let lastHash = "";
    for (let from = 0; ; ) {
      const { rows } = await tx.query<AuditRow>(
        `SELECT ${ROW_COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
        [from, last, VERIFY_BATCH],
      );
      for (const row of rows) {
        const line = `${JSON.stringify({ ...row, occurred_at: row.occurred_at.toISOString() })}\n`;
        digest.update(line);
        if (!out.write(line)) await once(out, "drain");
        count++;
        lastHash = row.hash;
        from = row.seq;
      }
      if (rows.length < VERIFY_BATCH) break;
    }
    out.end();
    await once(out, "finish");
    const sha256 = digest.digest("hex");
    await tx.query(
      `INSERT INTO audit_archives (through_seq, last_hash, row_count, location, file_sha256)
       VALUES ($1, decode($2, 'hex'), $3, $4, $5)`,
      [last, lastHash, count, file, sha256],
    );
    await tx.query("DELETE FROM audit_log WHERE seq <= $1", [last]);
    await appendAudit(tx, [
      {
        actor: null,
        actor_name: "tme audit archive",
        namespace: GLOBAL_NAMESPACE,
        action: "audit.archive",
        target: file,
        request_id: null,
        source_ip: null,
        outcome: "ok",
        status: null,
        details: { through_seq: last, rows: count, file_sha256: sha256, last_hash: lastHash },
      },
    ]);
    return { archived: count, throughSeq: last, file, sha256 };
  });
}
