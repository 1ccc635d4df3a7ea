import fc from "fast-check";
import { quote } from "shlex";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { MAX_BODY_BYTES } from "../../functions/http/pipeline.js";
import type { AnyRoute } from "../../functions/http/route.js";
import { routes } from "../../functions/http/routes/index.js";
import { withTestApp } from "../helpers/test-app.js";

/**
 * Hostile and odd input to every route of the API (the route list itself, so a new route is
 * covered the day it is added): never a 5xx, always the one error shape, and what is stored
 * comes back byte for byte. Bodies are generated from each route's own zod schema (as JSON
 * Schema), valid-shaped with random corruption, so the fuzzing follows the schemas as they change.
 */

let taskId: string;
const t = withTestApp();
beforeAll(async () => {
  const created = await t.request("POST", "/task/create", { body: { name: "noop" } });
  taskId = created.body.id;
});

const RUNS = 40;

const PATH_VALUES: Record<string, () => string> = {
  task_id: () => taskId,
  name: () => "noop",
  file: () => "swagger-ui.css",
};

function concretePath(
  route: AnyRoute,
  fill: (param: string) => string = (p) => PATH_VALUES[p]?.() ?? "x",
): string {
  return route.path.replace(/\{([^}]+)\}/g, (_, param: string) => fill(param));
}

/** encodeURIComponent, but a lone surrogate (which it refuses) goes out as its raw UTF-8-ish bytes. */
function encode(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return "%ED%A0%80";
  }
}

const label = (route: AnyRoute) => `${route.method} ${route.path}`;
const guarded = routes.filter((r) => r.scope !== "public");
const withBody = routes.filter((r) => r.body && r.method !== "GET");
const withParams = routes.filter((r) => r.path.includes("{"));

function expectNoServerError(res: { status: number; body: unknown; text: string }, what: string) {
  expect(res.status, `${what} -> ${res.status} ${res.text.slice(0, 300)}`).toBeLessThan(500);
  if (res.status >= 400) {
    expect(res.body, `${what}: error shape`).toMatchObject({
      error: { code: expect.any(String), message: expect.any(String), details: expect.any(Array) },
    });
    expect(res.text).not.toMatch(/\n\s+at /);
  }
}

// Strings a careless API chokes on.
const NASTY = [
  "'; DROP TABLE tasks; --",
  '" OR 1=1 --',
  "1); SELECT pg_sleep(10); --",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template injection probe, meant literally
  "$1 $2 %s %n {{7*7}} ${7*7}",
  "\u202Eevil\u202C عربى עברית",
  "e\u0301\u0301\u0301 Z\u0351\u0352\u0353",
  "😀👩‍👩‍👧‍👦🏳️‍🌈 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{10FFFD}",
  "\uFEFF\u200B\u2028\u2029",
  "a\u0000b",
  "\uD800 lone",
  "\\u0000 written out",
  "<script>alert(1)</script>",
  "../../etc/passwd",
  "%00%ff%",
];

const weirdString = fc.oneof(
  fc.constantFrom(...NASTY),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ maxLength: 20 }),
);

const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  weirdString,
  fc.integer(),
  fc.double(),
  fc.constantFrom(null, true, false, 0, -1, 1e308, -0, 2 ** 53, "", [], {}),
  fc.jsonValue({ maxDepth: 3 }),
);

type JsonSchema = {
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  type?: string;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  format?: string;
};

/** Values shaped by a JSON Schema, each node now and then swapped for something hostile. */
function fromSchema(root: JsonSchema): fc.Arbitrary<unknown> {
  const resolve = (s: JsonSchema): JsonSchema => (s.$ref ? root.$defs![s.$ref.replace("#/$defs/", "")]! : s);
  const build = (schema: JsonSchema): fc.Arbitrary<unknown> => {
    const s = resolve(schema);
    let shaped: fc.Arbitrary<unknown>;
    if (s.anyOf) shaped = fc.oneof(...s.anyOf.map(build));
    else if (s.enum) shaped = fc.constantFrom(...s.enum);
    else if (s.type === "object") {
      const props = s.properties ?? {};
      const extra =
        typeof s.additionalProperties === "object"
          ? fc.dictionary(
              s.propertyNames?.pattern ? fc.stringMatching(new RegExp(s.propertyNames.pattern)) : weirdString,
              build(s.additionalProperties),
              { maxKeys: 4 },
            )
          : fc.constant({});
      shaped = fc
        .tuple(
          fc.record(Object.fromEntries(Object.entries(props).map(([k, v]) => [k, build(v)])), {
            requiredKeys: s.required ?? [],
          }),
          extra,
        )
        .map(([known, more]) => ({ ...(more as object), ...(known as object) }));
    } else if (s.type === "array")
      shaped = fc.array(build(s.items ?? {}), { minLength: s.minItems ?? 0, maxLength: 4 });
    else if (s.type === "string") {
      if (s.format === "date-time") {
        shaped = fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      } else if (s.pattern) {
        shaped = fc.stringMatching(new RegExp(s.pattern));
      } else {
        shaped = fc.string({
          unit: "binary",
          minLength: s.minLength ?? 0,
          maxLength: Math.min(s.maxLength ?? 30, 30),
        });
      }
    } else if (s.type === "integer")
      shaped = fc.integer({ min: (s.minimum ?? -1000) - 2, max: Math.min(s.maximum ?? 1000, 1e6) + 2 });
    else if (s.type === "number") shaped = fc.double();
    else if (s.type === "boolean") shaped = fc.boolean();
    else if (s.type === "null") shaped = fc.constant(null);
    else shaped = fc.jsonValue({ maxDepth: 2 });
    return fc.oneof({ weight: 9, arbitrary: shaped }, { weight: 1, arbitrary: weirdValue });
  };
  return build(root);
}

function schemaOf(route: AnyRoute): JsonSchema {
  return z.toJSONSchema(route.body!, { io: "input", unrepresentable: "any" }) as JsonSchema;
}

describe("every route", () => {
  it("lists the task API among its routes", () => {
    const paths = routes.map(label);
    for (const path of ["POST /task/create", "GET /tasks", "PATCH /task/{task_id}", "GET /task-types"]) {
      expect(paths).toContain(path);
    }
  });

  it.each(guarded.map((r) => [label(r), r] as const))(
    "%s: 401 without a key or with a garbage one",
    async (_, route) => {
      const path = concretePath(route);
      const none = await t.request(route.method, path, { key: null });
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe("unauthenticated");
      await fc.assert(
        fc.asyncProperty(fc.stringMatching(/^[\x20-\x7e]{0,80}$/), async (header) => {
          const res = await t.request(route.method, path, { key: null, headers: { authorization: header } });
          expect(res.status).toBe(401);
        }),
        { numRuns: 15 },
      );
    },
  );

  it.each(withBody.map((r) => [label(r), r] as const))(
    "%s: 415 for a non-JSON content type, 400 for broken JSON, 413 over 256 KiB",
    async (_, route) => {
      const path = concretePath(route);
      for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/xml"]) {
        const res = await t.request(route.method, path, {
          rawBody: "{}",
          headers: { "content-type": contentType },
        });
        expect(res.status, contentType).toBe(415);
        expect(res.body.error.code).toBe("unsupported_media_type");
      }
      for (const raw of ["{", "{'a': 1}", "nul", "[1,]", "\u0000", '{"a":1}{']) {
        const res = await t.request(route.method, path, {
          rawBody: raw,
          headers: { "content-type": "application/json" },
        });
        expect(res.status, raw).toBe(400);
      }
      const huge = JSON.stringify({ name: "noop", params: { echo: "x".repeat(MAX_BODY_BYTES) } });
      const tooLarge = await t.request(route.method, path, {
        rawBody: huge,
        headers: { "content-type": "application/json" },
      });
      expect(tooLarge.status).toBe(413);
      expect(tooLarge.body.error.code).toBe("payload_too_large");
      const deep = `${"[".repeat(5000)}${"]".repeat(5000)}`;
      const nested = await t.request(route.method, path, {
        rawBody: `{"a":${deep}}`,
        headers: { "content-type": "application/json" },
      });
      expect(nested.status).toBe(400);
    },
  );

  it.each(withBody.map((r) => [label(r), r] as const))(
    "%s: schema-shaped, corrupted bodies never 5xx",
    async (_, route) => {
      const path = concretePath(route);
      await fc.assert(
        fc.asyncProperty(fromSchema(schemaOf(route)), async (body) => {
          const res = await t.request(route.method, path, {
            rawBody: JSON.stringify(body),
            headers: { "content-type": "application/json" },
          });
          expectNoServerError(res, `${label(route)} ${JSON.stringify(body)?.slice(0, 200)}`);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it.each(withBody.map((r) => [label(r), r] as const))(
    "%s: any JSON value as the body never 5xx",
    async (_, route) => {
      const path = concretePath(route);
      await fc.assert(
        fc.asyncProperty(weirdValue, async (body) => {
          const res = await t.request(route.method, path, {
            rawBody: JSON.stringify(body) ?? "null",
            headers: { "content-type": "application/json" },
          });
          expectNoServerError(res, `${label(route)} ${JSON.stringify(body)?.slice(0, 200)}`);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it.each(routes.map((r) => [label(r), r] as const))(
    "%s: arbitrary query strings never 5xx",
    async (_, route) => {
      const path = concretePath(route);
      const keys = fc.oneof(
        fc.constantFrom(
          "status",
          "name",
          "label",
          "limit",
          "cursor",
          "created_after",
          "schedule_id",
          "namespace",
        ),
        weirdString,
      );
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(keys, weirdString), { maxLength: 4 }), async (pairs) => {
          const query = pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&");
          const body = route.body && route.method !== "GET" ? { body: {} } : {};
          const res = await t.request(route.method, `${path}?${query}`, body);
          expectNoServerError(res, `${label(route)}?${query}`);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it.each(withParams.map((r) => [label(r), r] as const))(
    "%s: arbitrary path parameters never 5xx",
    async (_, route) => {
      const segment = fc.oneof(
        weirdString.filter((s) => s.length > 0).map(encode),
        fc.constantFrom("%", "%E0%A4%A", "%00", "%ED%A0%80", "%FF", "a%2Fb", "x".repeat(300)),
      );
      await fc.assert(
        fc.asyncProperty(segment, async (value) => {
          const body = route.body && route.method !== "GET" ? { body: {} } : {};
          const path = concretePath(route, () => value);
          const res = await t.request(route.method, path, body);
          expectNoServerError(res, `${route.method} ${path}`);
        }),
        { numRuns: RUNS },
      );
    },
  );
});

describe("stored strings", () => {
  const storable = fc.oneof(
    fc.constantFrom(...NASTY.filter((s) => !s.includes("\u0000") && !s.includes("\uD800"))),
    fc.string({ unit: "binary", maxLength: 60 }).filter((s) => !s.includes("\u0000")),
    fc.string({ unit: "grapheme", maxLength: 30 }),
  );

  it("come back byte for byte: description, labels and params", async () => {
    await fc.assert(
      fc.asyncProperty(
        storable,
        storable,
        storable,
        storable,
        async (description, labelValue, paramKey, paramValue) => {
          const body = {
            name: "noop",
            description,
            labels: { k: labelValue },
            params: { echo: { [paramKey]: paramValue, list: [paramValue, { deeper: description }] } },
          };
          const created = await t.request("POST", "/task/create", { body });
          expect(created.status, created.text).toBe(201);
          const got = await t.request("GET", `/task/${created.body.id}`);
          expect(got.body.description).toBe(body.description);
          expect(got.body.labels).toEqual(body.labels);
          expect(got.body.params).toEqual(body.params);
          // jsonb orders object keys its own way; the strings themselves must be the same bytes.
          const bytes = (v: string) => Buffer.from(v, "utf8").toString("hex");
          expect(bytes(got.body.description)).toBe(bytes(description));
          expect(bytes(got.body.params.echo[paramKey])).toBe(bytes(paramValue));
          expect(bytes(got.body.params.echo.list[1].deeper)).toBe(bytes(description));
          expect(bytes(got.body.labels.k)).toBe(bytes(body.labels.k));
          const patched = await t.request("PATCH", `/task/${created.body.id}`, {
            body: { description: paramValue, labels: { v: description } },
          });
          expect(patched.body.description).toBe(paramValue);
          expect(patched.body.labels).toEqual({ v: description });
        },
      ),
      { numRuns: 50 },
    );
  });

  it("come back byte for byte: name and command, in the task and in the list filtered by that name", async () => {
    const bytes = (v: string) => Buffer.from(v, "utf8").toString("hex");
    await fc.assert(
      fc.asyncProperty(
        storable.filter((s) => s.length < 190),
        storable.filter((s) => s.length > 0),
        async (nameText, commandText) => {
          // A prefix no plugin mapping matches, so the command's shell plugin takes the task.
          const name = `x-${nameText}`;
          // Quoted, so any text is one argument of a command the shell plugin can parse.
          const command = `echo ${quote(commandText)}`;
          const created = await t.request("POST", "/task/create", { body: { name, command } });
          expect(created.status, created.text).toBe(201);
          const got = await t.request("GET", `/task/${created.body.id}`);
          expect(bytes(got.body.name)).toBe(bytes(name));
          expect(bytes(got.body.command)).toBe(bytes(command));
          const listed = await t.request("GET", `/tasks?name=${encodeURIComponent(name)}`);
          expect(listed.status, listed.text).toBe(200);
          expect(listed.body.map((task: { id: string }) => task.id)).toContain(created.body.id);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("keeps a 200 KiB string under the 256 KiB limit intact", async () => {
    const big = "ä😀z".repeat(25_000);
    const created = await t.request("POST", "/task/create", {
      body: { name: "noop", params: { echo: big } },
    });
    expect(created.status).toBe(201);
    const got = await t.request("GET", `/task/${created.body.id}`);
    expect(got.body.params.echo).toBe(big);
  });

  it("refuses NUL and lone surrogates with 400 naming the field, wherever they are", async () => {
    const cases: Array<[unknown, string]> = [
      [{ name: "noop", description: "a\u0000b" }, "description"],
      [{ name: "noop", labels: { k: "\u0000" } }, "labels.k"],
      [{ name: "noop", params: { echo: { "x\u0000": 1 } } }, "params.echo.x\u0000"],
      [{ name: "noop", params: { echo: ["ok", "\uDC00"] } }, "params.echo.1"],
    ];
    for (const [body, path] of cases) {
      const res = await t.request("POST", "/task/create", { body });
      expect(res.status).toBe(400);
      expect(res.body.error.details[0].path).toBe(path);
    }
    expect((await t.request("GET", "/tasks?name=a%00b")).status).toBe(400);
    expect((await t.request("GET", "/task/tsk%00x")).status).toBe(400);
    expect((await t.request("GET", "/tasks?namespace=%00")).status).toBe(400);
  });
});
