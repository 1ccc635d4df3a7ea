/**
 * The per-command supervisor: a small Node program that TME starts for each command and that
 * starts the command itself. It exists so that a command never outlives the TME that started
 * it, even when TME is frozen (SIGSTOP, a stalled machine) or killed with SIGKILL, where no
 * code of TME's can run:
 *
 * - it holds the attempt's lease deadline on its own (monotonic) clock; TME sends each renewal;
 *   when the deadline passes unrenewed it stops the command (SIGTERM to its process group,
 *   SIGKILL after the kill grace), which fits in the margin TME keeps before the lease expires;
 * - when TME disappears (its end of the control pipe closes: exit, crash, kill -9) it kills the
 *   command at once;
 * - it kills every descendant, not only the process group: processes that left the group with
 *   setsid are found by parent links in /proc, watched while the command runs (in a sandbox
 *   with its own PID namespace, killing the sandbox ends them all anyway);
 * - it reports the instant the command's work really ended, which TME records for a lost run.
 *
 * It is source text, run with `node -e`, so that it needs no file beside the code: the cloud
 * worker is one esbuild bundle, where a path next to the module would not exist. Plain
 * CommonJS, no dependencies.
 *
 * Protocol. stdin (TME to supervisor), JSON lines: first the spec
 *   {"argv": [...], "cwd"?, "env": {...}, "uid"?, "gid"?, "sandboxed"?, "deadline_in_ms", "kill_grace_ms"}
 * (sandboxed: argv starts bubblewrap, see plugins/shell-sandbox.ts)
 * then any number of {"renew_in_ms": N} and at most one {"stop": "<reason>"}.
 * fd 3 (supervisor to TME), JSON lines: {"started": pid} or {"spawn_error": code, "message"},
 * and last {"code", "signal", "ended_at": epoch ms, "stopped_by"?: "deadline"|"stop"|"parent"}.
 * fd 1 and 2 are the command's own output (it inherits them), untouched.
 */
export const SUPERVISOR_SOURCE = String.raw`
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const { performance } = require("node:perf_hooks");

let report = (message) => {
  try { fs.writeSync(3, JSON.stringify(message) + "\n"); } catch { report = () => {}; }
};

let spec;
let child;
let deadlineAt = Infinity;
let deadlineTimer;
let stoppedBy;
let exited = false;
// pid -> start time (field 22 of /proc/<pid>/stat), so a reused pid is never killed.
const descendants = new Map();

function stat(pid) {
  try {
    const text = fs.readFileSync("/proc/" + pid + "/stat", "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), start: fields[19] };
  } catch {
    return undefined;
  }
}

/** Adds every current descendant of this process to the watched set. */
function scan() {
  let pids;
  try { pids = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number); } catch { return; }
  const parents = new Map();
  for (const pid of pids) {
    const s = stat(pid);
    if (s) parents.set(pid, s);
  }
  const known = new Set([process.pid, ...descendants.keys()]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, s] of parents) {
      if (!known.has(pid) && known.has(s.ppid)) {
        known.add(pid);
        descendants.set(pid, s.start);
        grew = true;
      }
    }
  }
}

function killAll(signal) {
  // In a sandbox, SIGTERM goes to the command and its descendants only, not to bubblewrap (the
  // child) nor its pid 1 (the child's child): either dying takes the whole sandbox down with
  // SIGKILL at once, and the command would get no grace. SIGKILL goes to all.
  const spare = signal === "SIGTERM" && spec && spec.sandboxed && child && child.pid;
  // Scanned before the group is killed: once a parent dies, its setsid child is reparented
  // away from us and no longer found by parent links. Twice, for what forked meanwhile.
  for (let round = 0; round < 2; round++) {
    scan();
    if (child && child.pid && !spare) {
      try { process.kill(-child.pid, signal); } catch {}
    }
    for (const [pid, start] of descendants) {
      const s = stat(pid);
      if (!s || s.start !== start) { descendants.delete(pid); continue; }
      if (spare && (pid === child.pid || s.ppid === child.pid)) continue;
      try { process.kill(pid, signal); } catch {}
    }
  }
}

let graceTimer;
function stop(reason, graceMs) {
  if (!stoppedBy) stoppedBy = reason;
  if (graceMs <= 0) return killAll("SIGKILL");
  killAll("SIGTERM");
  if (!graceTimer) graceTimer = setTimeout(() => killAll("SIGKILL"), graceMs);
}

function armDeadline() {
  clearTimeout(deadlineTimer);
  const wait = deadlineAt - performance.now();
  if (wait <= 0) return stop("deadline", spec.kill_grace_ms);
  deadlineTimer = setTimeout(armDeadline, Math.min(wait, 2 ** 30));
}

function onMessage(message) {
  if (!spec) {
    spec = message;
    deadlineAt = performance.now() + spec.deadline_in_ms;
    return start();
  }
  if (typeof message.renew_in_ms === "number") {
    const next = performance.now() + message.renew_in_ms;
    if (next > deadlineAt && !stoppedBy) { deadlineAt = next; armDeadline(); }
  }
  if (message.stop) stop(String(message.stop), spec.kill_grace_ms);
}

function start() {
  try {
    child = spawn(spec.argv[0], spec.argv.slice(1), {
      cwd: spec.cwd,
      env: spec.env,
      uid: spec.uid,
      gid: spec.gid,
      detached: true,
      stdio: ["ignore", "inherit", "inherit"],
    });
  } catch (error) {
    report({ spawn_error: error.code || "EINVAL", message: error.message });
    return process.exit(0);
  }
  child.once("error", (error) => {
    if (child.pid === undefined) {
      report({ spawn_error: error.code || "EINVAL", message: error.message });
      process.exit(0);
    }
  });
  child.once("spawn", () => {
    report({ started: child.pid });
    armDeadline();
    watch = setInterval(scan, 250);
  });
  child.once("exit", (code, signal) => {
    exited = true;
    const endedAt = Date.now();
    // The leader is gone: whatever it left behind goes with it.
    killAll("SIGKILL");
    report({ code, signal, ended_at: endedAt, stopped_by: stoppedBy });
    process.exit(0);
  });
}
let watch;

let buffered = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffered += chunk;
  let newline;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    if (line.trim()) onMessage(JSON.parse(line));
  }
});
// TME is gone (exit, crash, kill -9): nobody will renew or read the result.
const parentGone = () => {
  if (!spec) return process.exit(0);
  if (!exited) stop("parent", 0);
};
process.stdin.on("end", parentGone);
process.stdin.on("error", parentGone);
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => stop("parent", 0));
`;
