import * as z from "zod";
import type { ApiKeyRecord } from "../../core/auth/api-keys.js";
import { createApiKey, NAMESPACE_PATTERN, NAMESPACE_RULE, SCOPES } from "../../core/auth/api-keys.js";
import { NotFound, ValidationFailed } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import { decodeKeysetCursor, nextCursorHeader, PageQueryFields } from "../cursor.js";
import { errorResponse, response } from "../openapi.js";
import { defineRoute } from "../route.js";
import { Timestamp } from "./task-schemas.js";

const TAGS = ["keys"];

const KeyView = z.object({
  id: z.string(),
  key_id: z.string(),
  name: z.string(),
  namespace: z.string(),
  scopes: z.array(z.enum(SCOPES)),
  prefix: z.string().describe("The key's first characters, to recognise it; never the key"),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  last_used_at: z.string().nullable().describe("Updated at most once a minute"),
  revoked_at: z.string().nullable(),
  bootstrap: z.boolean().describe("Made from TME_BOOTSTRAP_API_KEY"),
  status: z.enum(["active", "expired", "revoked"]),
});

const CreatedKeyView = KeyView.extend({
  key: z.string().describe("The API key: shown in this response only; TME keeps its hash"),
});

export function keyView(record: ApiKeyRecord, now: Date) {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: record.id,
    key_id: record.id,
    name: record.name,
    namespace: record.namespace,
    scopes: record.scopes,
    prefix: record.prefix,
    created_at: record.created_at.toISOString(),
    expires_at: iso(record.expires_at),
    last_used_at: iso(record.last_used_at),
    revoked_at: iso(record.revoked_at),
    bootstrap: record.bootstrap,
    status: record.revoked_at
      ? ("revoked" as const)
      : record.expires_at && record.expires_at <= now
        ? ("expired" as const)
        : ("active" as const),
  };
}

const CreateKeyBody = z
  .object({
    name: z.string().min(1).max(200),
    scopes: z.array(z.enum(SCOPES)).min(1).max(SCOPES.length),
    namespace: z
      .string()
      .regex(NAMESPACE_PATTERN, `must be ${NAMESPACE_RULE}`)
      .default("default")
      .describe("The namespace the key acts in"),
    expires_at: Timestamp.optional().describe("After this instant the key is refused (401)"),
  })
  .strict();

const KeyParams = z.object({ key_id: z.string().min(1).max(200) }).strict();

export const keyRoutes = [
  defineRoute({
    method: "POST",
    path: "/keys",
    scope: "admin",
    body: CreateKeyBody,
    idempotent: true,
    secretFields: ["key"],
    auditAction: "key.create",
    docs: {
      summary: "Create an API key (shown once)",
      tags: TAGS,
      description:
        "The response's `key` is the only copy: TME stores its SHA-256 hash. An Idempotency-Key replay " +
        "answers `key: null` with a note, because the key is not stored.",
      responses: {
        201: response("Created; `key` is shown only here", CreatedKeyView),
        400: errorResponse("Invalid name, scopes, namespace or expires_at"),
        403: errorResponse("Needs the admin scope"),
      },
    },
    async handle(req, app) {
      const expiresAt = req.body.expires_at === undefined ? null : new Date(req.body.expires_at);
      if (expiresAt && expiresAt <= app.now()) {
        throw new ValidationFailed("invalid body: expires_at: must be in the future", [
          { path: "expires_at", message: "must be in the future" },
        ]);
      }
      const created = await createApiKey(app.apiKeys, {
        name: req.body.name,
        scopes: [...new Set(req.body.scopes)],
        namespace: req.body.namespace,
        expiresAt,
        newId: () => newId("key"),
      });
      const record = await app.apiKeys.get(created.id);
      return {
        status: 201,
        body: { ...keyView(record!, app.now()), key: created.key },
        headers: { Location: `/keys/${created.id}` },
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/keys",
    scope: "admin",
    query: z
      .object({
        ...PageQueryFields,
      })
      .strict(),
    docs: {
      summary: "List API keys, newest first (never the keys themselves)",
      tags: TAGS,
      description: "Every namespace's keys, revoked and expired ones included (see `status`).",
      responses: {
        200: response("Keys (X-Next-Cursor for the next page)", z.array(KeyView)),
        403: errorResponse("Needs the admin scope"),
      },
    },
    async handle(req, app) {
      const page = await app.apiKeys.list({
        limit: req.query.limit,
        after: decodeKeysetCursor(req.query.cursor),
      });
      const now = app.now();
      return {
        status: 200,
        body: page.keys.map((k) => keyView(k, now)),
        headers: nextCursorHeader(page.next),
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/keys/{key_id}",
    scope: "admin",
    params: KeyParams,
    docs: {
      summary: "One API key's record (never the key)",
      tags: TAGS,
      responses: { 200: response("The key's record", KeyView), 404: errorResponse("No such key") },
    },
    async handle(req, app) {
      const record = await app.apiKeys.get(req.params.key_id);
      if (!record) throw new NotFound("API key", req.params.key_id);
      return { status: 200, body: keyView(record, app.now()) };
    },
  }),
  defineRoute({
    method: "DELETE",
    path: "/keys/{key_id}",
    scope: "admin",
    params: KeyParams,
    auditAction: "key.revoke",
    docs: {
      summary: "Revoke an API key",
      tags: TAGS,
      description:
        "Refused from the next request on, in every TME process (keys are checked against the database on " +
        "each request, with no cache). Revoking a revoked key changes nothing. A revoked bootstrap key stays " +
        "revoked when TME restarts with TME_BOOTSTRAP_API_KEY still set.",
      responses: { 204: response("Revoked"), 404: errorResponse("No such key") },
    },
    async handle(req, app) {
      if (!(await app.apiKeys.revoke(req.params.key_id))) throw new NotFound("API key", req.params.key_id);
      return { status: 204 };
    },
  }),
];
