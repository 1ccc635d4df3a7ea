// The callbacks passed to page.evaluate are sent to the browser and run there; the project has
// no DOM types (a lib reference would change fetch's types in every file), so they reach the
// page's globals through globalThis.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcessTme, startInProcessTme } from "../helpers/local-runtime.js";

const CHROMIUM = "/usr/bin/chromium";
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const SHOTS = path.resolve("docs/dashboard");

let tme: InProcessTme;
let browser: BrowserContext;
let page: Page;
const profile = mkdtempSync(path.join(os.tmpdir(), "tme-chromium-"));

beforeAll(async () => {
  tme = await startInProcessTme();
  // A fresh profile per run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1280, height: 900 },
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await tme?.close();
  rmSync(profile, { recursive: true, force: true });
});

/** Serious or critical axe-core findings on the page as it is now. */
async function accessibilityProblems(): Promise<string[]> {
  // Evaluated through the DevTools protocol: the page's CSP (rightly) refuses an injected script tag.
  if (!(await page.evaluate(() => "axe" in globalThis))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const result = await (globalThis as any).axe.run((globalThis as any).document);
    return result.violations.map((v: any) => `${v.impact}: ${v.id}: ${v.help}`);
  });
  return (found as string[]).filter((v) => v.startsWith("serious") || v.startsWith("critical"));
}

describe("the dashboard in Chromium", () => {
  it("signs in with an API key kept in sessionStorage only", async () => {
    await page.goto(`${tme.tme.url}/dashboard`);
    await page.getByLabel("API key").fill(tme.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.getItem("tme.api_key"))).toBe(
      tme.key,
    );
    expect(await page.evaluate(() => (globalThis as any).localStorage.length)).toBe(0);
    expect(page.url()).not.toContain(tme.key);
    await page.getByText("live: streaming").waitFor();
  });

  it("shows a created task reaching succeeded without a reload", async () => {
    await page.goto(`${tme.tme.url}/dashboard#/tasks`);
    await page.getByRole("heading", { name: "Tasks" }).waitFor();
    const created = await tme.api("POST", "/task/create", { name: "browser_probe", command: "true" });
    const row = page.locator(`tr[data-task-id="${created.body.id}"] td.status`);
    await row.waitFor();
    await page.waitForFunction(
      (id) =>
        (globalThis as any).document.querySelector(`tr[data-task-id="${id}"] td.status`)?.textContent ===
        "succeeded",
      created.body.id,
      { timeout: 20_000 },
    );
    expect(await row.textContent()).toBe("succeeded");
    expect(await accessibilityProblems()).toEqual([]);
  });

  it("has no serious or critical accessibility problem on the overview and a task page; saves screenshots", async () => {
    mkdirSync(SHOTS, { recursive: true });
    await page.goto(`${tme.tme.url}/dashboard#/`);
    await page.getByRole("heading", { name: "Finished per minute, last hour" }).waitFor();
    expect(await accessibilityProblems()).toEqual([]);
    await page.screenshot({ path: path.join(SHOTS, "overview.png"), fullPage: true });
    const tasks = await tme.api("GET", "/tasks?limit=1");
    await page.goto(`${tme.tme.url}/dashboard#/task/${tasks.body[0].id}`);
    await page.getByRole("heading", { name: "Timeline" }).waitFor();
    expect(await accessibilityProblems()).toEqual([]);
    await page.screenshot({ path: path.join(SHOTS, "task.png"), fullPage: true });
  });
});
