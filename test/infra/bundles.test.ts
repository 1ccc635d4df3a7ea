import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TmeFunctionName } from "../../functions/config/cloud-environment.js";
import { createDashboardHandler } from "../../functions/handlers/dashboard.js";
import { dashboardFiles } from "../../functions/http/dashboard-static.js";
import { MAX_BUNDLE_BYTES } from "../../infra/constructs/tme-function.js";
import { type BuiltBundles, synthesizeWithBundles } from "./synth.js";

let built: BuiltBundles;
let bundles: Record<TmeFunctionName, string>;

beforeAll(() => {
  built = synthesizeWithBundles();
  bundles = built.bundles;
}, 300_000);

afterAll(() => built?.remove());

describe("Lambda bundles", () => {
  it("load on their own and export a handler function", () => {
    for (const [name, dir] of Object.entries(bundles)) {
      const run = () =>
        execFileSync(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            "const m = await import('./index.mjs'); if (typeof m.handler !== 'function') throw new Error('no handler export');",
          ],
          { cwd: dir, env: { PATH: process.env.PATH ?? "" }, stdio: "pipe" },
        );
      expect(run, name).not.toThrow();
    }
    // Seven cold Node processes: seconds each on a busy machine.
  }, 180_000);

  it(`are each under ${MAX_BUNDLE_BYTES / 1000} KB (sizes printed)`, () => {
    const sizes = Object.fromEntries(
      Object.entries(bundles).map(([name, dir]) => [name, statSync(path.join(dir, "index.mjs")).size]),
    );
    console.log(
      Object.entries(sizes)
        .map(([name, bytes]) => `bundle ${name.padEnd(20)} ${(bytes / 1000).toFixed(1).padStart(7)} KB`)
        .join("\n"),
    );
    for (const [name, bytes] of Object.entries(sizes)) expect(bytes, name).toBeLessThan(MAX_BUNDLE_BYTES);
  });

  it("leave out what a Lambda never uses: the dashboard files outside the dashboard function, the YAML parser, the SDK's other credential sources", () => {
    for (const [name, dir] of Object.entries(bundles)) {
      const code = readFileSync(path.join(dir, "index.mjs"), "utf8");
      // Strings only the left-out packages hold (yaml's Composer, the SSO and IMDS providers).
      expect(code, name).not.toContain("fromInstanceMetadata");
      expect(code, name).not.toContain("credential-provider-sso");
      expect(code, name).not.toContain("Implicit map keys need to be followed by map values");
      // zod's Dutch messages: a named `import { z } from "zod"` anywhere in the bundle keeps
      // every locale (360 KB); `import * as z from "zod"` lets esbuild leave them out.
      expect(code, `${name}: some file has import { z } from "zod"`).not.toContain("Ongeldige invoer");
      if (name !== "dashboard") expect(existsSync(path.join(dir, "dashboard")), name).toBe(false);
    }
    const html = readFileSync(path.join(bundles.dashboard, "dashboard/index.html"), "utf8");
    expect(html).toBe(
      readFileSync(path.join(import.meta.dirname, "../../functions/dashboard/dist/index.html"), "utf8"),
    );
  });

  it("carry the configuration as JSON, equal to what the YAML parses to, with source maps beside the code", async () => {
    const { loadConfig } = await import("../../functions/config/load.js");
    const fromYaml = loadConfig({ env: {} });
    for (const [name, dir] of Object.entries(bundles)) {
      expect(existsSync(path.join(dir, "index.mjs.map")), name).toBe(true);
      if (name === "dashboard") {
        expect(existsSync(path.join(dir, "configurations")), name).toBe(false);
        continue;
      }
      const configDir = path.join(dir, "configurations");
      expect(readdirSync(configDir).sort(), name).toEqual([
        "app_config.yaml",
        "db_config.yaml",
        "task_plugins.yaml",
      ]);
      for (const file of readdirSync(configDir)) {
        expect(() => JSON.parse(readFileSync(path.join(configDir, file), "utf8")), file).not.toThrow();
      }
      expect({ ...loadConfig({ env: {}, configDir }), configDir: "" }, name).toEqual({
        ...fromYaml,
        configDir: "",
      });
    }
  });

  it("serve the dashboard from the dashboard function: the page with its CSP, assets, 404 for the rest", async () => {
    const { handler } = (await import(path.join(bundles.dashboard, "index.mjs"))) as {
      handler: ReturnType<typeof createDashboardHandler>;
    };
    const get = (rawPath: string, method = "GET") =>
      handler({
        rawPath,
        requestContext: { requestId: "r1", http: { method } },
      } as Parameters<typeof handler>[0]);
    const page = await get("/dashboard");
    expect(page.statusCode).toBe(200);
    expect(page.headers?.["Content-Security-Policy"]).toContain("script-src 'self'");
    expect(page.headers?.["X-Content-Type-Options"]).toBe("nosniff");
    const script = /assets\/(index-[\w-]+\.js)/.exec(String(page.body))?.[1];
    expect(script).toBeDefined();
    const asset = await get(`/dashboard/assets/${script}`);
    expect(asset.statusCode).toBe(200);
    expect(asset.isBase64Encoded).toBe(true);
    expect(asset.headers?.["Content-Type"]).toContain("javascript");
    const missing = await get("/dashboard/assets/nope.js");
    expect(missing.statusCode).toBe(404);
    expect(JSON.parse(String(missing.body)).error.code).toBe("not_found");
    expect((await get("/dashboard/../index.mjs")).statusCode).toBe(404);
    expect((await get("/dashboard", "POST")).statusCode).toBe(404);
    // The same module in the source tree, where the files are in functions/dashboard/dist.
    const local = createDashboardHandler(
      dashboardFiles(path.join(import.meta.dirname, "../../functions/dashboard/dist")),
    );
    expect(
      (
        await local({
          rawPath: "/dashboard",
          requestContext: { requestId: "r", http: { method: "GET" } },
        } as Parameters<typeof local>[0])
      ).body,
    ).toBe(page.body);
  });

  it("give the migrate function every SQL migration, and only it", () => {
    const sql = readdirSync(path.join(import.meta.dirname, "../../migrations")).filter((f) =>
      f.endsWith(".sql"),
    );
    expect(readdirSync(path.join(bundles.migrate, "migrations")).sort()).toEqual(sql.sort());
    for (const [name, dir] of Object.entries(bundles)) {
      if (name !== "migrate") expect(existsSync(path.join(dir, "migrations")), name).toBe(false);
    }
  });
});
