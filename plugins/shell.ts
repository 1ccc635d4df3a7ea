import { spawn } from "node:child_process";
import path from "node:path";
import type { Readable } from "node:stream";
import picomatch from "picomatch";
import { join as shellJoin, split as shellSplit } from "shlex";
import * as z from "zod";
import { ConfigError } from "../functions/config/load.js";
import type { AppConfig } from "../functions/config/schema.js";
import { OutputTail } from "../functions/core/plugins/output-tail.js";
import {
  type AttemptLease,
  definePlugin,
  PermanentTaskError,
  TaskRunError,
} from "../functions/core/plugins/plugin.js";
import { checkShellLine } from "./shell-line.js";
import {
  CommandNotVisible,
  type IsolatedCommand,
  isolateCommand,
  type ResolvedIsolation,
  resolveIsolation,
} from "./shell-sandbox.js";
import { SUPERVISOR_SOURCE } from "./shell-supervisor.js";

/** Never passed to a command, even when listed in shell.env_allowlist: TME's own credentials. */
const NEVER_PASSED = /^(AWS_|DATABASE_|TME_|PG(PASSWORD|USER|HOST|DATABASE|SERVICE)?$|PGPASSFILE$)/;

/** The environment a command gets: the allowlisted variables of TME's own, nothing else. */
export function scrubbedEnvironment(
  allowlist: readonly string[],
  env: Record<string, string | undefined> = process.env,
): Record<string, string> {
  const result: Record<string, string> = {};
  for (const name of allowlist) {
    const value = env[name];
    if (value !== undefined && !NEVER_PASSED.test(name)) result[name] = value;
  }
  return result;
}

/**
 * The argv a command runs as: split like a POSIX shell splits words (quotes, escapes) but
 * executed directly, so "; id" or "$(id)" are plain arguments; or, only when
 * shell.allow_shell is set, /bin/sh -c with the whole text, once every simple command in it has
 * passed the allowlist (plugins/shell-line.ts).
 */
export function commandArgv(command: string, shell: AppConfig["shell"]): string[] {
  if (shell.allow_shell) {
    checkShellLine(command, shell.allowed_commands);
    return ["/bin/sh", "-c", command];
  }
  let argv: string[];
  try {
    argv = shellSplit(command);
  } catch (error) {
    throw new PermanentTaskError(`command cannot be parsed: ${(error as Error).message}`);
  }
  if (argv.length === 0 || argv[0] === "") throw new PermanentTaskError("command is empty");
  // The allowlist judges the normalised program path, so "/opt/jobs/../../bin/sh" is "/bin/sh".
  const program = argv[0]!.includes("/") ? path.posix.normalize(argv[0]!) : argv[0]!;
  checkAllowed(shellJoin([program, ...argv.slice(1)]), shell.allowed_commands);
  return [program, ...argv.slice(1)];
}

/**
 * The text is argv joined, where a newline is only a character of an argument, so "*" crosses
 * it too ("*" alone would refuse `python3 -c 'import os\nprint(1)'`).
 */
function checkAllowed(text: string, patterns: readonly string[]): void {
  // bash mode: "*" crosses "/", so "/opt/jobs/*" allows "/opt/jobs/run.sh --all".
  const allows = (pattern: string) => {
    const re = picomatch.makeRe(pattern, { bash: true, dot: true });
    return new RegExp(re.source, `${re.flags}s`).test(text);
  };
  if (patterns.some(allows)) return;
  throw new PermanentTaskError(
    `command ${JSON.stringify(text.slice(0, 200))} matches no pattern of shell.allowed_commands`,
  );
}

/** What the supervisor reports on fd 3 (see plugins/shell-supervisor.ts). */
type SupervisorReport =
  | { started: number }
  | { spawn_error: string; message: string }
  | { code: number | null; signal: NodeJS.Signals | null; ended_at: number; stopped_by?: string };

interface CommandEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Epoch ms the command's work ended, by the supervisor's account. */
  endedAtMs: number;
  spawnError?: { code: string; message: string };
}

/**
 * The default handler for tasks with a `command`. The command runs under a supervisor of its
 * own (plugins/shell-supervisor.ts) in a process group of its own; on timeout or cancel the
 * whole group and every descendant get SIGTERM, then SIGKILL after worker.kill_grace_seconds,
 * and when the command ends whatever it left behind is killed too. The supervisor holds the
 * lease deadline, renewed from here, so the command stops on time even if TME is frozen or gone.
 */
export const handler = definePlugin({
  name: "shell",
  description:
    "Runs the task's command (argv, no shell unless shell.allow_shell) with a scrubbed environment.",
  paramsSchema: z
    .object({
      /** Working directory; in a sandbox a path inside it (default its private /tmp), else TME's. */
      cwd: z.string().min(1).max(4096).optional(),
    })
    .strict(),
  checkCommand(command, shell) {
    commandArgv(command, shell);
    // Where no start refused it already (the cloud's API and worker), a required sandbox that
    // cannot be had is a 422 at create rather than a task that can never run.
    if (shell.sandbox === "required") isolationOrRefuse(shell);
  },
  // Whoever makes a task or schedule that runs a command must hold commands:run (finding 6: a
  // schedules:write key ran one through a schedule's template and /trigger).
  requiredScope: () => "commands:run",
  async run(ctx) {
    if (!ctx.command) throw new PermanentTaskError("the shell plugin needs a command");
    const shell = ctx.config.shell;
    const argv = commandArgv(ctx.command, shell);
    const tail = new OutputTail(shell.output_tail_bytes);
    if (ctx.signal.aborted) throw new PermanentTaskError("aborted before start");

    let isolated: IsolatedCommand;
    try {
      isolated = isolateCommand(
        isolationOrRefuse(shell),
        argv,
        scrubbedEnvironment(shell.env_allowlist),
        ctx.params.cwd,
      );
    } catch (error) {
      if (error instanceof CommandNotVisible)
        throw new PermanentTaskError(`command could not start: ${error.message}`);
      throw error;
    }
    const supervised = superviseCommand(
      {
        argv: isolated.argv,
        cwd: isolated.cwd,
        env: isolated.env,
        uid: isolated.uid,
        gid: isolated.gid,
        sandboxed: isolated.sandboxed,
        deadline_in_ms: Math.max(0, ctx.lease.deadlineMs - Date.now()),
        kill_grace_ms: ctx.config.worker.kill_grace_seconds * 1000,
      },
      ctx.lease,
      ctx.signal,
      tail,
    );
    const ended = await supervised.ended.finally(() => isolated.cleanup());
    const output = tail.text();
    const outcome = {
      exitCode: ended.code ?? undefined,
      outputTail: output.text,
      outputTruncated: output.truncated,
      pid: supervised.pid(),
      workEndedAt: new Date(ended.endedAtMs),
    };
    if (ended.spawnError) {
      const message = `command could not start: ${ended.spawnError.message}`;
      // A missing program or a permission problem will not fix itself on the next attempt.
      if (ended.spawnError.code === "ENOENT" || ended.spawnError.code === "EACCES")
        throw new PermanentTaskError(message);
      throw new TaskRunError(message, outcome);
    }
    if (ctx.signal.aborted) {
      throw new TaskRunError(`stopped (${String(ctx.signal.reason)}); process group killed`, outcome);
    }
    if (ended.code !== 0) {
      const how = ended.code === null ? `killed by ${ended.signal}` : `exit code ${ended.code}`;
      // The end of the output, where a failing command says why; the whole tail is in the run.
      const said = lastChars(output.text, ERROR_TAIL_CHARS);
      const cut = said.length < output.text.length ? "..." : "";
      throw new TaskRunError(`${how}${said ? `: ${cut}${said}` : ""}`, outcome);
    }
    return {
      ...outcome,
      // The full tail is in the run (GET /task/{id}/runs); the task's result keeps a short one.
      result: { exit_code: 0, output: lastChars(output.text, 4096) },
    };
  },
});

/** The isolation in force; a required sandbox that cannot run fails the task for good. */
function isolationOrRefuse(shell: AppConfig["shell"]): ResolvedIsolation {
  try {
    return resolveIsolation(shell);
  } catch (error) {
    if (error instanceof ConfigError) throw new PermanentTaskError(error.message);
    throw error;
  }
}

/** The first line the supervisor reads. */
export interface SupervisorSpec {
  argv: string[];
  cwd?: string;
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /** argv starts bubblewrap: SIGTERM spares it and its pid 1 (see plugins/shell-supervisor.ts). */
  sandboxed?: boolean;
  deadline_in_ms: number;
  kill_grace_ms: number;
}

/**
 * Starts the supervisor for one command, passes it each lease renewal and the abort, and
 * collects the command's output and how it ended.
 */
export function superviseCommand(
  spec: SupervisorSpec,
  lease: AttemptLease,
  signal: AbortSignal,
  tail: OutputTail,
): { ended: Promise<CommandEnd>; pid(): number | undefined } {
  // Its own process group: a terminal's Ctrl-C or a signal to TME's group must not kill the
  // supervisor before it has killed the command. No environment: it needs none, and a
  // NODE_OPTIONS of TME's (a loader, an inspector) has no business in it.
  const supervisor = spawn(process.execPath, ["-e", SUPERVISOR_SOURCE], {
    env: {},
    detached: true,
    stdio: ["pipe", "pipe", "pipe", "pipe"],
  });
  let commandPid: number | undefined;
  const control = supervisor.stdin;
  // EPIPE when the supervisor has gone: nothing left to tell it.
  control.on("error", () => {});
  const send = (message: object) => {
    if (!control.destroyed && control.writable) control.write(`${JSON.stringify(message)}\n`);
  };
  send(spec);
  const stopWatchingLease = lease.onRenew((deadlineMs) =>
    send({ renew_in_ms: Math.max(0, deadlineMs - Date.now()) }),
  );
  const onAbort = () => send({ stop: String(signal.reason) });
  signal.addEventListener("abort", onAbort, { once: true });
  supervisor.stdout.on("data", (chunk: Buffer) => tail.push(chunk));
  supervisor.stderr.on("data", (chunk: Buffer) => tail.push(chunk));

  const reports: SupervisorReport[] = [];
  let buffered = "";
  const reportStream = supervisor.stdio[3] as Readable;
  reportStream.setEncoding("utf8");
  reportStream.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const report = JSON.parse(buffered.slice(0, nl)) as SupervisorReport;
      buffered = buffered.slice(nl + 1);
      if ("started" in report) commandPid = report.started;
      reports.push(report);
    }
  });

  const ended = new Promise<CommandEnd>((resolve) => {
    supervisor.once("error", (error) =>
      resolve({
        code: null,
        signal: null,
        endedAtMs: Date.now(),
        spawnError: { code: "SUPERVISOR", message: `supervisor could not start: ${error.message}` },
      }),
    );
    // "close": the supervisor has exited and every holder of the output pipes (the command
    // and its descendants) is gone, so the tail is complete.
    supervisor.once("close", (code, exitSignal) => {
      signal.removeEventListener("abort", onAbort);
      stopWatchingLease();
      const last = reports[reports.length - 1];
      if (last && "spawn_error" in last)
        return resolve({
          code: null,
          signal: null,
          endedAtMs: Date.now(),
          spawnError: { code: last.spawn_error, message: last.message },
        });
      if (last && "ended_at" in last)
        return resolve({ code: last.code, signal: last.signal, endedAtMs: last.ended_at });
      resolve({
        code: null,
        signal: null,
        endedAtMs: Date.now(),
        spawnError: {
          code: "SUPERVISOR",
          message: `supervisor ended without a report (${exitSignal ?? `exit code ${code}`})`,
        },
      });
    });
  });
  return { ended, pid: () => commandPid };
}

/** Output kept in a failed task's `error`: its last characters (stored errors are capped at 16 KiB). */
const ERROR_TAIL_CHARS = 4096;

function lastChars(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}
