import * as z from "zod";
import type { AuditRow } from "../../core/audit/audit.js";
import { decodeKeysetCursor, nextCursorHeader, PageQueryFields } from "../cursor.js";
import { errorResponse, response } from "../openapi.js";
import { defineRoute } from "../route.js";
import { Timestamp } from "./task-schemas.js";

const AuditView = z.object({
  id: z.string(),
  seq: z.number().int().describe("Position in the hash chain"),
  occurred_at: z.string(),
  actor: z.string().nullable().describe("The key id; null for a refused authentication"),
  actor_name: z.string().nullable(),
  namespace: z.string().describe('The namespace acted in; "*" for rows of none (refused authentication)'),
  action: z.string().describe('e.g. "task.create", "key.revoke", "auth.refused"'),
  target: z.string().nullable(),
  request_id: z.string().nullable(),
  source_ip: z.string().nullable(),
  outcome: z.enum(["ok", "failed", "refused", "forbidden"]),
  status: z.number().int().nullable().describe("The HTTP status answered"),
  details: z.record(z.string(), z.unknown()),
  prev_hash: z.string().nullable().describe("SHA-256 (hex) of the row before"),
  hash: z.string().describe("SHA-256 (hex) of prev_hash and this row's canonical encoding"),
});

export function auditView(row: AuditRow) {
  return { ...row, occurred_at: row.occurred_at.toISOString() };
}

export const auditRoutes = [
  defineRoute({
    method: "GET",
    path: "/audit",
    scope: "admin",
    query: z
      .object({
        actor: z.string().min(1).max(200).optional().describe("A key id"),
        action: z.string().min(1).max(200).optional().describe('Exact, or a prefix such as "task.*"'),
        target: z.string().min(1).max(2000).optional(),
        outcome: z.enum(["ok", "failed", "refused", "forbidden"]).optional(),
        since: Timestamp.optional().describe("Rows at or after this instant"),
        until: Timestamp.optional().describe("Rows before this instant"),
        ...PageQueryFields,
      })
      .strict(),
    docs: {
      summary: "The audit log, newest first",
      tags: ["operations"],
      description:
        "Every changing call and every refused authentication, hash-chained (verify with `tme audit verify`). " +
        "All namespaces unless `?namespace=` names one.",
      responses: {
        200: response("Audit rows (X-Next-Cursor for the next page)", z.array(AuditView)),
        403: errorResponse("Needs the admin scope"),
      },
    },
    async handle(req, app) {
      const q = req.query;
      const page = await app.auditLog.list({
        namespace: req.requestedNamespace,
        actor: q.actor,
        action: q.action,
        target: q.target,
        outcome: q.outcome,
        since: q.since === undefined ? undefined : new Date(q.since),
        until: q.until === undefined ? undefined : new Date(q.until),
        limit: q.limit,
        after: decodeKeysetCursor(q.cursor),
      });
      return { status: 200, body: page.rows.map(auditView), headers: nextCursorHeader(page.next) };
    },
  }),
];
