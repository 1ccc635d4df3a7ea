import type { z } from "zod";
import type { AppConfig } from "../../config/schema.js";
import type { Scope } from "../auth/api-keys.js";
import { InternalError } from "../errors.js";

/** The logger a plugin gets: structured, already tagged with the task id and attempt. */
export interface PluginLogger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

/**
 * The attempt's lease as this process sees it, on the local clock. Work must be stopped before
 * `deadlineMs` unless the lease is renewed first: after that instant another worker may take the
 * task over. A plugin that hands work to another process (the shell plugin's supervisor) passes
 * each new deadline on, so that process can stop the work even if TME itself is frozen or gone.
 */
export interface AttemptLease {
  /** Date.now() instant by which the attempt must have stopped unless renewed. */
  readonly deadlineMs: number;
  /** Called after each renewal with the new deadline; returns a function that unsubscribes. */
  onRenew(listener: (deadlineMs: number) => void): () => void;
}

/** What a plugin's run() receives for one attempt of one task. */
export interface TaskContext<P = unknown> {
  taskId: string;
  name: string;
  namespace: string;
  /** Validated against the plugin's paramsSchema at create time and again before running. */
  params: P;
  command: string | null;
  /** 1 for the first attempt of the current series. */
  attempt: number;
  maxAttempts: number;
  timeoutSeconds: number;
  /** Fires on timeout and on cancel; a plugin must stop promptly when it does. */
  signal: AbortSignal;
  /** The lease deadline, renewed by the heartbeat (see AttemptLease). */
  lease: AttemptLease;
  logger: PluginLogger;
  /** Reports progress; TME stores it on the task and throttles the task.progress events. */
  progress(percent: number, message?: string): void;
  /** Reads a secret by name (Secrets Manager in the cloud, environment/config locally). */
  secret(name: string): Promise<string>;
  /** TME's settings (app_config.yaml): the shell and http plugins obey theirs. */
  config: Readonly<AppConfig>;
  /** What built-in maintenance plugins may touch, through ports (no database handle). */
  services: PluginServices;
}

/**
 * Port: deletes history older than the given instants, of one namespace or (null) of every
 * namespace; returns how many rows went.
 */
export interface HistoryPruner {
  prune(
    before: { taskEvents: Date; taskRuns: Date; deliveries: Date },
    namespace: string | null,
  ): Promise<{
    task_events: number;
    task_runs: number;
    deliveries: number;
  }>;
}

export interface PluginServices {
  history: HistoryPruner;
}

/** What run() may return: a JSON result, and for command-like plugins the output and exit code. */
export interface TaskOutcome {
  result?: unknown;
  exitCode?: number;
  outputTail?: string;
  outputTruncated?: boolean;
  pid?: number;
  /**
   * When the work really ended, if the plugin knows better than "when run() returned": the
   * shell plugin's supervisor reports the instant the command died, which for a frozen TME is
   * long before run() resumes. Recorded on a lost run.
   */
  workEndedAt?: Date;
}

/**
 * A task handler. Throwing (or rejecting) fails the attempt: TME retries while attempts are
 * left. Throw a PermanentTaskError to fail without further attempts.
 */
export interface TaskPlugin<P = unknown> {
  name: string;
  description?: string;
  paramsSchema?: z.ZodType<P>;
  /**
   * For plugins that run a task's `command`: throws (PermanentTaskError) for a command they
   * could never run, so POST /task/create answers 422 instead of accepting a task that fails.
   */
  checkCommand?(command: string, shell: AppConfig["shell"]): void;
  /**
   * A scope the creator of such a task (or of a schedule that makes them) must hold beyond the
   * route's own, given its params: clean_logs across all namespaces needs admin. Checked when
   * the task or schedule is created or changed, never again when it runs.
   */
  requiredScope?(params: P, command: string | null): Scope | undefined;
  run(ctx: TaskContext<P>): Promise<TaskOutcome | undefined>;
}

export function definePlugin<P>(plugin: TaskPlugin<P>): TaskPlugin<P> {
  return plugin;
}

/** An attempt failed in a way another attempt cannot fix (bad input, 4xx from a server). */
export class PermanentTaskError extends InternalError {
  override name = "PermanentTaskError";
}

/** Carries the partial outcome (exit code, output) of an attempt that failed. */
export class TaskRunError extends InternalError {
  override name = "TaskRunError";
  constructor(
    message: string,
    readonly outcome: TaskOutcome,
  ) {
    super(message);
  }
}

/** Port: which plugin runs a task name, and its limits. */
export interface ResolvedPlugin {
  /** The module name from task_plugins.yaml ("shell" for unmapped commands). */
  module: string;
  plugin: TaskPlugin;
  /** Per-type concurrency limit from task_plugins.yaml. */
  concurrency: number | undefined;
}

export interface PluginResolver {
  /** The plugin for a task name, or for a plain command the shell plugin; undefined if neither. */
  resolve(name: string, hasCommand: boolean): ResolvedPlugin | undefined;
  /** The concurrency limit configured for a task name, if any. */
  concurrencyOf(name: string): number | undefined;
}
