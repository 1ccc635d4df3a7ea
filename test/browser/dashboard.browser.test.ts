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
import { type Receiver, startReceiver } from "../helpers/receiver.js";

const CHROMIUM = "/usr/bin/chromium";
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
/**
 * The README's screenshots are rewritten only when asked (DASHBOARD_SCREENSHOTS=1), so an ordinary
 * test run leaves the committed files alone.
 */
const SHOTS = process.env.DASHBOARD_SCREENSHOTS === "1" ? path.resolve("docs/dashboard") : undefined;

let tme: InProcessTme;
let receiver: Receiver;
let browser: BrowserContext;
let page: Page;
const profile = mkdtempSync(path.join(os.tmpdir(), "tme-chromium-"));

beforeAll(async () => {
  tme = await startInProcessTme();
  receiver = await startReceiver();
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
  await receiver?.close();
  await tme?.close();
  rmSync(profile, { recursive: true, force: true });
});

const dashboard = (hash = "") => `${tme.tme.url}/dashboard${hash}`;

/** Serious or critical axe-core findings on the page as it is now. */
async function accessibilityProblems(): Promise<string[]> {
  // Evaluated through the DevTools protocol: the page's CSP (rightly) refuses an injected script tag.
  if (!(await page.evaluate(() => "axe" in globalThis))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const result = await (globalThis as any).axe.run((globalThis as any).document);
    return result.violations.map(
      (v: any) => `${v.impact}: ${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target).join(" ")})`,
    );
  });
  return (found as string[]).filter((v) => v.startsWith("serious") || v.startsWith("critical"));
}

async function screenshot(name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(key: string): Promise<void> {
  await page.goto(dashboard());
  await page.evaluate(() => (globalThis as any).sessionStorage.clear());
  await page.reload();
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

async function waitForTask(id: string, done: (task: any) => boolean, timeoutMs = 20_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const task = (await tme.api("GET", `/task/${id}`)).body;
    if (done(task)) return task;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${task.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The value of the progress bar on a task page. */
const progressValue = () =>
  page.evaluate(() => Number((globalThis as any).document.querySelector("main progress")?.value ?? -1));

describe("the dashboard in Chromium", () => {
  it("signs in with an API key kept in sessionStorage only; the sign-in page passes axe", async () => {
    await page.goto(dashboard());
    await page.getByLabel("API key").waitFor();
    expect(await accessibilityProblems()).toEqual([]);
    await page.getByLabel("API key").fill("tme_not_a_key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
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
    await page.goto(dashboard("#/tasks"));
    await page.getByRole("heading", { name: "Tasks", exact: true }).waitFor();
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

  it("moves a running sleep task's progress bar, and its Cancel button cancels it", async () => {
    const created = await tme.api("POST", "/task/create", { name: "sleep_browser", params: { seconds: 20 } });
    await page.goto(dashboard(`#/task/${created.body.id}`));
    await page.getByRole("heading", { name: /Task sleep_browser/ }).waitFor();
    await page.locator('h1 .status[data-status="running"]').waitFor({ timeout: 15_000 });
    await page.waitForFunction(
      () => Number((globalThis as any).document.querySelector("main progress")?.value) > 0,
      undefined,
      { timeout: 15_000 },
    );
    const first = await progressValue();
    await page.waitForFunction(
      (before) => Number((globalThis as any).document.querySelector("main progress")?.value) > before,
      first,
      { timeout: 15_000 },
    );
    const later = await progressValue();
    expect(later).toBeGreaterThan(first);
    await screenshot("task");
    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "cancel: the task is now cancelled" }).waitFor();
    await page.locator('h1 .status[data-status="cancelled"]').waitFor();
    expect((await waitForTask(created.body.id, (t) => t.status === "cancelled")).status).toBe("cancelled");
    expect(await accessibilityProblems()).toEqual([]);
  });

  it("restarts a failed task from its page, and shows the API's message when an action is refused", async () => {
    const created = await tme.api("POST", "/task/create", {
      name: "sleep_fails",
      params: { seconds: 0.1, fail: true },
      max_attempts: 1,
    });
    await waitForTask(created.body.id, (t) => t.status === "failed");
    await page.goto(dashboard(`#/task/${created.body.id}`));
    await page.locator('h1 .status[data-status="failed"]').waitFor();
    await page.getByRole("button", { name: "Pause", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "pause refused:" }).waitFor();
    await page.getByRole("button", { name: "Restart", exact: true }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /restart: the task is now (queued|running)/ })
      .waitFor();
    await page.locator(".timeline li", { hasText: "task.restarted" }).waitFor();
    const restarted = await waitForTask(created.body.id, (t) => t.status === "failed" && t.finished_at);
    const runs = await tme.api("GET", `/task/${created.body.id}/runs`);
    expect(runs.body.map((r: any) => r.series)).toEqual([0, 1]);
    expect(restarted.status).toBe("failed");
  });

  it("pauses and resumes a task type, with its counts and limit", async () => {
    await tme.api("POST", "/task/create", { name: "noop_typed", run_at: "2099-01-01T00:00:00Z" });
    await page.goto(dashboard("#/types"));
    const row = page.locator('tr[data-task-type="noop_typed"]');
    await row.waitFor();
    expect(await row.textContent()).toContain("queued 1");
    await page.getByRole("button", { name: "Pause task type noop_typed" }).click();
    await row.locator('.state[data-state="paused"]').waitFor();
    const types = await tme.api("GET", "/task-types");
    expect(types.body.find((t: any) => t.name === "noop_typed").paused).toBe(true);
    expect(await accessibilityProblems()).toEqual([]);
    await page.getByRole("button", { name: "Resume task type noop_typed" }).click();
    await row.locator('.state[data-state="active"]').waitFor();
    expect((await tme.api("GET", "/task-types")).body.find((t: any) => t.name === "noop_typed").paused).toBe(
      false,
    );
  });

  it("pauses a schedule, shows its next run and last result, and triggers it", async () => {
    const created = await tme.api("POST", "/schedule", { name: "noop_nightly", interval: 3600 });
    expect(created.status).toBe(201);
    const id = created.body.schedule_id;
    await page.goto(dashboard("#/schedules"));
    const row = page.locator(`tr[data-schedule-id="${id}"]`);
    await row.waitFor();
    expect(await row.locator("time").first().getAttribute("datetime")).toBe(created.body.next_run_at);
    await page.getByRole("button", { name: "Trigger now: schedule noop_nightly" }).click();
    await page.getByRole("status").filter({ hasText: "noop_nightly fired now: task" }).waitFor();
    await row.locator('.status[data-status="succeeded"]').waitFor({ timeout: 20_000 });
    await page.getByRole("button", { name: "Pause schedule noop_nightly" }).click();
    await row.locator('.state[data-state="paused"]').waitFor();
    expect((await tme.api("GET", `/schedule/${id}`)).body.state).toBe("paused");
    await page.getByRole("button", { name: "Resume schedule noop_nightly" }).waitFor();
    expect(await accessibilityProblems()).toEqual([]);
  });

  it("lists a subscription's deliveries (a test event and a task event), its health, and redelivers", async () => {
    const sub = await tme.api("POST", "/events", {
      event_types: ["task.succeeded"],
      callback_url: `${receiver.url}/hooks`,
      filter: { name: "noop_hooked" },
    });
    expect(sub.status).toBe(201);
    await page.goto(dashboard("#/subscriptions"));
    const row = page.locator(`tr[data-subscription-id="${sub.body.id}"]`);
    await row.waitFor();
    await page.getByRole("button", { name: `Send test event to ${receiver.url}/hooks` }).click();
    await page.getByRole("status").filter({ hasText: "succeeded (HTTP 200" }).waitFor();
    await row.getByTestId("success-rate").filter({ hasText: "100 % of 1" }).waitFor();
    expect(await accessibilityProblems()).toEqual([]);

    await tme.api("POST", "/task/create", { name: "noop_hooked" });
    await row.getByRole("link", { name: "Delivery log" }).click();
    await page.getByRole("heading", { name: "Delivery log" }).waitFor();
    const delivered = page.locator("tr[data-delivery-id]", { hasText: "task.succeeded" });
    await delivered.locator('.status[data-status="succeeded"]').waitFor({ timeout: 20_000 });
    await page.locator("tr[data-delivery-id]", { hasText: "ping" }).waitFor();
    expect(await accessibilityProblems()).toEqual([]);
    const before = receiver.requests.length;
    await delivered.getByRole("button", { name: /Redeliver task.succeeded/ }).click();
    await page.getByRole("status").filter({ hasText: "queued again" }).waitFor();
    await receiver.waitFor(before + 1);
    await page.goto(dashboard("#/subscriptions"));
    await row.getByTestId("success-rate").filter({ hasText: "100 %" }).waitFor();
    await screenshot("subscriptions");
  });

  it("confirms a bulk action with the number of tasks it will touch, then applies it", async () => {
    for (let i = 0; i < 3; i++)
      await tme.api("POST", "/task/create", { name: "noop_bulk", run_at: "2099-01-01T00:00:00Z" });
    await page.goto(dashboard("#/tasks?name=noop_bulk"));
    await page.locator("tr[data-task-id]").nth(2).waitFor();
    await page.getByLabel("Status").selectOption("queued");
    await page.waitForFunction(
      () => (globalThis as any).location.hash === "#/tasks?status=queued&name=noop_bulk",
    );
    await page.getByLabel("Action").selectOption("pause");
    await page.getByRole("button", { name: "Apply to matching tasks…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    expect(await dialog.getByTestId("bulk-count").textContent()).toContain("This will pause 3 task(s)");
    expect(await accessibilityProblems()).toEqual([]);
    await dialog.getByRole("button", { name: "Yes, pause 3 task(s)" }).click();
    await page.getByRole("status").filter({ hasText: "paused 3 task(s), skipped 0" }).waitFor();
    const listed = await tme.api("GET", "/tasks?name=noop_bulk");
    expect(listed.body.map((t: any) => t.status)).toEqual(["paused", "paused", "paused"]);
    // A filter that selects nothing the action applies to: the confirmation says 0 and cannot act.
    await page.getByRole("button", { name: "Apply to matching tasks…" }).click();
    expect(await dialog.getByTestId("bulk-count").textContent()).toContain("pause 0 task(s)");
    expect(await dialog.getByRole("button", { name: "Yes, pause 0 task(s)" }).isDisabled()).toBe(true);
    await dialog.getByRole("button", { name: "No, go back" }).click();
  });

  it("shows open and resolved alerts, and the audit log with filters", async () => {
    await page.goto(dashboard("#/alerts"));
    await page.getByRole("heading", { name: "Open", exact: true }).waitFor();
    await page.getByRole("heading", { name: "Resolved", exact: true }).waitFor();
    // The failed sleep task above (its last attempt failed) raised one.
    await page.locator("tr[data-alert-id]", { hasText: "sleep_fails" }).first().waitFor();
    expect(await accessibilityProblems()).toEqual([]);
    await page.goto(dashboard("#/audit"));
    await page.locator("tr[data-audit-seq]").first().waitFor();
    await page.getByLabel("Action").fill("schedule.*");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => {
      const rows = [...(globalThis as any).document.querySelectorAll("tr[data-audit-seq] td:nth-child(4)")];
      return rows.length > 0 && rows.every((td: any) => td.textContent.startsWith("schedule."));
    });
    expect(await page.locator("tr[data-audit-seq]", { hasText: "schedule.pause" }).count()).toBe(1);
    expect(await accessibilityProblems()).toEqual([]);
  });

  it("shows running tasks' progress on the overview, with no serious or critical accessibility problem; saves its screenshot when asked", async () => {
    const running = await tme.api("POST", "/task/create", {
      name: "sleep_overview",
      params: { seconds: 20 },
    });
    await page.goto(dashboard("#/"));
    await page.getByRole("heading", { name: "Finished per minute, last hour" }).waitFor();
    await page.waitForFunction(
      () =>
        Number(
          (globalThis as any).document.querySelector('progress[aria-label="sleep_overview progress"]')?.value,
        ) > 0,
      undefined,
      { timeout: 15_000 },
    );
    expect(await accessibilityProblems()).toEqual([]);
    await screenshot("overview");
    await tme.api("POST", `/task/${running.body.id}/cancel`);
  });

  it("falls back to polling every 2 s where /stream is not served (the cloud), and still updates", async () => {
    // What API Gateway answers: the route exists but cannot stream.
    await page.route("**/stream", (route) =>
      route.fulfill({
        status: 404,
        contentType: "application/json",
        body: JSON.stringify({ error: { code: "stream_not_served", message: "poll instead" } }),
      }),
    );
    try {
      await page.goto(dashboard("#/tasks"));
      await page.reload();
      await page.getByText("live: polling every 2 s").waitFor();
      const created = await tme.api("POST", "/task/create", { name: "noop_polled" });
      await page.locator(`tr[data-task-id="${created.body.id}"] td.status[data-status="succeeded"]`).waitFor({
        timeout: 20_000,
      });
    } finally {
      await page.unroute("**/stream");
    }
  });

  it("works from the keyboard: skip to the content, open a page, act, and leave a dialog with Escape", async () => {
    await page.goto(dashboard("#/"));
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.textContent)).toBe(
      "Skip to content",
    );
    await page.keyboard.press("Enter");
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.id)).toBe("content");
    await page.getByRole("link", { name: "Schedules" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Schedules" }).waitFor();
    await page.getByRole("button", { name: "Resume schedule noop_nightly" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("status").filter({ hasText: "noop_nightly is now active" }).waitFor();
    await page.goto(dashboard("#/tasks?name=noop_bulk"));
    await page.getByRole("button", { name: "Apply to matching tasks…" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("dialog").waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "hidden" });
  });

  it("shows only what a read-only key may do", async () => {
    const key = await tme.api("POST", "/keys", { name: "viewer", scopes: ["tasks:read"] });
    expect(key.status).toBe(201);
    await signIn(key.body.key);
    const nav = await page.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents();
    expect(nav).toEqual(["Overview", "Tasks", "Task types", "Schedules", "Alerts"]);
    await page.goto(dashboard("#/types"));
    await page.locator("tr[data-task-type]").first().waitFor();
    expect(
      await page
        .getByRole("button", { name: /^(Pause|Resume) task type/ })
        .first()
        .isDisabled(),
    ).toBe(true);
    await page.goto(dashboard("#/audit"));
    await page.getByRole("heading", { name: "Not available with this key" }).waitFor();
    await signIn(tme.key);
  });

  it("lets an admin key look at another namespace, and back at its own", async () => {
    const other = await tme.api("POST", "/keys", {
      name: "team_a",
      scopes: ["tasks:read", "tasks:write"],
      namespace: "team_a",
    });
    const theirs = await tme.api("POST", "/task/create", { name: "noop_team_a" }, other.body.key);
    expect(theirs.status).toBe(201);
    await page.goto(dashboard("#/tasks"));
    await page.locator("tr[data-task-id]").first().waitFor();
    expect(await page.locator(`tr[data-task-id="${theirs.body.id}"]`).count()).toBe(0);
    await page.getByLabel("Namespace").fill("team_a");
    await page.getByRole("button", { name: "Show" }).click();
    await page.getByText("Showing namespace team_a").waitFor();
    await page.locator(`tr[data-task-id="${theirs.body.id}"]`).waitFor();
    expect(await page.locator("tr[data-task-id]").count()).toBe(1);
    expect(await accessibilityProblems()).toEqual([]);
    await page.getByLabel("Namespace").fill("default");
    await page.getByRole("button", { name: "Show" }).click();
    await page.getByText("Showing namespace team_a").waitFor({ state: "detached" });
    await page.locator("tr[data-task-id]").nth(1).waitFor();
    expect(await page.locator(`tr[data-task-id="${theirs.body.id}"]`).count()).toBe(0);
  });

  it("is usable at 390 px: no page scrolls sideways, every page is reachable from the navigation and passes axe", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await page.goto(dashboard("#/"));
      const links = page.getByRole("navigation", { name: "Main" }).getByRole("link");
      const titles = await links.allTextContents();
      expect(titles).toEqual([
        "Overview",
        "Tasks",
        "Task types",
        "Schedules",
        "Subscriptions",
        "Alerts",
        "Audit",
      ]);
      const overflow: string[] = [];
      const problems: string[] = [];
      for (const title of titles) {
        await links.filter({ hasText: new RegExp(`^${title}$`) }).click();
        await page.locator("main h1").waitFor();
        await page.waitForTimeout(200);
        const widths = await page.evaluate(() => ({
          content: (globalThis as any).document.documentElement.scrollWidth,
          viewport: (globalThis as any).innerWidth,
        }));
        if (widths.content > widths.viewport) overflow.push(`${title}: ${widths.content} px`);
        problems.push(...(await accessibilityProblems()).map((p) => `${title}: ${p}`));
      }
      expect(overflow).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  it("renders the task list with 10,000 tasks in the database (time measured and printed)", async () => {
    await tme.database.db.query(
      `INSERT INTO tasks (id, name, command, handler, status, attempt, timeout_seconds, labels,
                          created_at, started_at, finished_at)
       SELECT 'tsk_render_' || g, 'render_' || (g % 25), 'true', 'shell',
              (CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'succeeded' END)::task_status, 1, 60,
              jsonb_build_object('batch', (g % 4)::text),
              now() - make_interval(secs => g), now() - make_interval(secs => g), now() - make_interval(secs => g)
         FROM generate_series(1, 10000) g`,
    );
    const figures: string[] = [];
    for (const [label, hash] of [
      ["all tasks", "#/tasks"],
      ["status=failed", "#/tasks?status=failed"],
      ["name=render_7", "#/tasks?name=render_7"],
      ["label=batch:2", "#/tasks?label=batch:2"],
    ] as const) {
      await page.goto(dashboard("#/"));
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.evaluate(() => delete (globalThis as any).document.body.dataset.tasksRenderedMs);
      const started = Date.now();
      await page.evaluate((h) => {
        (globalThis as any).location.hash = h;
      }, hash);
      await page.waitForFunction(() => (globalThis as any).document.body.dataset.tasksRenderedMs);
      const wall = Date.now() - started;
      const inPage = await page.evaluate(() => (globalThis as any).document.body.dataset.tasksRenderedMs);
      expect(await page.locator("tr[data-task-id]").count()).toBe(50);
      figures.push(
        `${label}: ${wall} ms from the click to the rows on screen (${inPage} ms request to paint)`,
      );
    }
    // Paging on: the next page's cursor, from the last page measured.
    await page.evaluate(() => delete (globalThis as any).document.body.dataset.tasksRenderedMs);
    const started = Date.now();
    await page.getByRole("button", { name: "Next page" }).click();
    await page.waitForFunction(() => (globalThis as any).document.body.dataset.tasksRenderedMs);
    figures.push(
      `next page of label=batch:2: ${Date.now() - started} ms from the click to the rows on screen`,
    );
    console.log(
      `[dashboard] task list, 10,000 tasks in the database, 50 rows a page:\n  ${figures.join("\n  ")}`,
    );
  });
});
