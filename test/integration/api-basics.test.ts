import { describe, expect, it } from "vitest";
import { createTestApp, withTestApp } from "../helpers/test-app.js";

const t = withTestApp();

describe("the API edge", () => {
  it("answers /health without a key", async () => {
    const res = await t.request("GET", "/health", { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ok", database: "ok" });
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });

  it("echoes the caller's X-Request-Id", async () => {
    const res = await t.request("GET", "/health", { headers: { "x-request-id": "abc-123" } });
    expect(res.headers.get("x-request-id")).toBe("abc-123");
  });

  it("serves the OpenAPI document and the docs page", async () => {
    const spec = await t.request("GET", "/openapi.json", { key: null });
    expect(spec.status).toBe(200);
    expect(spec.body.openapi).toBe("3.1.0");
    expect(Object.keys(spec.body.paths)).toContain("/health");
    const docs = await t.request("GET", "/docs", { key: null });
    expect(docs.status).toBe(200);
    expect(docs.headers.get("content-type")).toContain("text/html");
    const asset = await t.request("GET", "/docs/assets/swagger-ui-bundle.js", { key: null });
    expect(asset.status).toBe(200);
    expect(asset.text.length).toBeGreaterThan(100_000);
  });

  it("answers unknown routes with 404 in the error shape", async () => {
    const res = await t.request("GET", "/no/such/route");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      error: { code: "route_not_found", message: "no route for GET /no/such/route", details: [] },
    });
  });

  it("answers a wrong method with 405 and Allow", async () => {
    const res = await t.request("DELETE", "/health");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET");
    expect(res.body.error.code).toBe("method_not_allowed");
  });
});

describe("/health when the database is gone", () => {
  it("answers 503 with database unreachable", async () => {
    const broken = await createTestApp();
    try {
      await broken.database.drop();
      const res = await fetch(`${broken.url}/health`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: "degraded", database: "unreachable" });
    } finally {
      await broken.close().catch(() => {});
    }
  });
});

describe("malformed requests", () => {
  it("answers a malformed percent-encoding in a path parameter with 400, not 500", async () => {
    const res = await t.request("GET", "/docs/assets/%E0%A4%A");
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ path: "path.file", message: "malformed percent-encoding" }]);
  });
});
