import { spawn } from "node:child_process";
import path from "node:path";
import picomatch from "picomatch";
import { join as shellJoin, split as shellSplit } from "shlex";
import { z } from "zod";
import type { AppConfig } from "../functions/config/schema.js";
import { OutputTail } from "../functions/core/plugins/output-tail.js";
import { definePlugin, PermanentTaskError, TaskRunError } from "../functions/core/plugins/plugin.js";

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
 * shell.allow_shell is set, /bin/sh -c with the whole text.
 */
export function commandArgv(command: string, shell: AppConfig["shell"]): string[] {
  if (shell.allow_shell) {
    checkAllowed(command, shell.allowed_commands, false);
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
  checkAllowed(shellJoin([program, ...argv.slice(1)]), shell.allowed_commands, true);
  return [program, ...argv.slice(1)];
}

/**
 * `argvMode`: the text is argv joined, where a newline is only a character of an argument, so
 * "*" crosses it too ("*" alone would refuse `python3 -c 'import os\nprint(1)'`). For /bin/sh a
 * newline starts another command, and a pattern still stops at it.
 */
function checkAllowed(text: string, patterns: readonly string[], argvMode: boolean): void {
  // bash mode: "*" crosses "/", so "/opt/jobs/*" allows "/opt/jobs/run.sh --all".
  const allows = (pattern: string) => {
    const re = picomatch.makeRe(pattern, { bash: true, dot: true });
    return (argvMode ? new RegExp(re.source, `${re.flags}s`) : re).test(text);
  };
  if (patterns.some(allows)) return;
  throw new PermanentTaskError(
    `command ${JSON.stringify(text.slice(0, 200))} matches no pattern of shell.allowed_commands`,
  );
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}

/**
 * The default handler for tasks with a `command`. The command runs in a process group of its
 * own; on timeout or cancel the whole group gets SIGTERM, then SIGKILL after
 * worker.kill_grace_seconds, and when the command ends any descendants it left behind in its
 * group are killed too, so nothing of a task outlives it.
 */
export const handler = definePlugin({
  name: "shell",
  description:
    "Runs the task's command (argv, no shell unless shell.allow_shell) with a scrubbed environment.",
  paramsSchema: z
    .object({
      /** Working directory; default TME's. */
      cwd: z.string().min(1).max(4096).optional(),
    })
    .strict(),
  checkCommand(command, shell) {
    commandArgv(command, shell);
  },
  async run(ctx) {
    if (!ctx.command) throw new PermanentTaskError("the shell plugin needs a command");
    const shell = ctx.config.shell;
    const argv = commandArgv(ctx.command, shell);
    const tail = new OutputTail(shell.output_tail_bytes);
    const graceMs = ctx.config.worker.kill_grace_seconds * 1000;
    if (ctx.signal.aborted) throw new PermanentTaskError("aborted before start");

    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: ctx.params.cwd,
      env: scrubbedEnvironment(shell.env_allowlist),
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const pid = child.pid;
    child.stdout.on("data", (chunk: Buffer) => tail.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => tail.push(chunk));

    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      if (pid === undefined) return;
      killGroup(pid, "SIGTERM");
      killTimer = setTimeout(() => killGroup(pid, "SIGKILL"), graceMs);
    };
    ctx.signal.addEventListener("abort", onAbort, { once: true });

    const ended = await new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      spawnError?: Error;
    }>((resolve) => {
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      child.once("error", (error) => resolve({ code: null, signal: null, spawnError: error }));
      child.once("exit", (code, signal) => {
        exit = { code, signal };
        // The leader is gone; whatever it left in its group (background children holding the
        // pipes open) goes with it.
        if (pid !== undefined) killGroup(pid, "SIGKILL");
      });
      child.once("close", (code, signal) => resolve(exit ?? { code, signal }));
    });
    ctx.signal.removeEventListener("abort", onAbort);
    clearTimeout(killTimer);

    const output = tail.text();
    const outcome = {
      exitCode: ended.code ?? undefined,
      outputTail: output.text,
      outputTruncated: output.truncated,
      pid,
    };
    if (ended.spawnError) {
      const code = (ended.spawnError as NodeJS.ErrnoException).code;
      const message = `command could not start: ${ended.spawnError.message}`;
      // A missing program or a permission problem will not fix itself on the next attempt.
      if (code === "ENOENT" || code === "EACCES") throw new PermanentTaskError(message);
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

/** Output kept in a failed task's `error`: its last characters (stored errors are capped at 16 KiB). */
const ERROR_TAIL_CHARS = 4096;

function lastChars(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}
