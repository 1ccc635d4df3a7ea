import type { AppConfig } from "../../config/schema.js";
import type { AuditEntry } from "../audit/audit.js";
import { type Principal, requireScope } from "../auth/api-keys.js";
import { type ErrorDetail, issuesToDetails, Unprocessable, ValidationFailed } from "../errors.js";
import { newEvent } from "../events/event.js";
import { newId } from "../ids.js";
import type { PluginResolver, ResolvedPlugin } from "../plugins/plugin.js";
import { type Task, toTaskView } from "./task.js";
import type { StoredTask, TaskStore } from "./task-store.js";

export interface CreateTaskInput {
  name: string;
  command?: string | null;
  description?: string | null;
  params?: Record<string, unknown>;
  priority?: number;
  timeout_seconds?: number;
  max_attempts?: number;
  run_at?: Date;
  labels?: Record<string, string>;
  schedule_id?: string | null;
}

export interface CreateTaskDeps {
  tasks: TaskStore;
  /** Who asks (an API call); absent for a schedule's firing, checked when the schedule was made. */
  caller?: Principal;
  plugins: PluginResolver;
  /** With `shell`, a command is checked the way its plugin will run it (parse, allowlist). */
  config: Pick<AppConfig, "default_task_timeout" | "max_task_timeout" | "default_max_attempts"> &
    Partial<Pick<AppConfig, "shell">>;
  now: () => Date;
  /** The audit row of the request, for this task's id: written in the task's own commit. */
  audit?: (taskId: string) => AuditEntry;
}

/**
 * The checks a task must pass before it is stored: a plugin for its name (or a command for the
 * shell plugin), a command that plugin can run (it parses, the allowlist takes it), params that
 * fit the plugin's schema (a bad params object is a 422 now, not a failed task later), a
 * timeout within max_task_timeout. Schedules run it on their task
 * template when they are created, so a bad template is refused then, not at each firing.
 */
export function prepareTask(
  deps: Pick<CreateTaskDeps, "plugins" | "config"> & { caller?: Principal },
  input: Pick<CreateTaskInput, "name" | "command" | "params" | "timeout_seconds">,
): { handler: string; params: Record<string, unknown>; timeout_seconds: number } {
  const command = input.command ?? null;
  const resolved = deps.plugins.resolve(input.name, command !== null);
  if (!resolved) {
    throw new Unprocessable(`no plugin is mapped to task name "${input.name}" and the task has no command`, [
      { path: "command", message: "give a command, or map this name to a plugin in task_plugins.yaml" },
    ]);
  }

  if (command !== null && resolved.plugin.checkCommand && deps.config.shell) {
    try {
      resolved.plugin.checkCommand(command, deps.config.shell);
    } catch (error) {
      const message = (error as Error).message;
      throw new Unprocessable(message, [{ path: "command", message }]);
    }
  }

  let params: Record<string, unknown> = input.params ?? {};
  if (resolved.plugin.paramsSchema) {
    const parsed = resolved.plugin.paramsSchema.safeParse(params);
    if (!parsed.success) {
      const details: ErrorDetail[] = issuesToDetails(parsed.error.issues).map((d) => ({
        path: d.path === "(body)" ? "params" : `params.${d.path}`,
        message: d.message,
      }));
      throw new Unprocessable(
        `params do not fit plugin "${resolved.module}": ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`,
        details,
      );
    }
    params = parsed.data as Record<string, unknown>;
  }
  if (deps.caller) requirePluginScope(resolved.plugin, deps.caller, params, command);

  const timeout =
    input.timeout_seconds ?? Math.min(deps.config.default_task_timeout, deps.config.max_task_timeout);
  if (timeout > deps.config.max_task_timeout) {
    throw new ValidationFailed(`timeout_seconds exceeds max_task_timeout (${deps.config.max_task_timeout})`, [
      { path: "timeout_seconds", message: `must be <= ${deps.config.max_task_timeout} (max_task_timeout)` },
    ]);
  }
  return { handler: resolved.module, params, timeout_seconds: timeout };
}

/** A plugin may ask more of the caller for some params (clean_logs of every namespace: admin). */
function requirePluginScope(
  plugin: ResolvedPlugin["plugin"],
  caller: Principal,
  params: Record<string, unknown>,
  command: string | null,
): void {
  const needed = plugin.requiredScope?.(params, command);
  if (needed) requireScope(caller, needed);
}

/**
 * The caller may create or change what makes such a task (a schedule's template): the scope its
 * plugin asks for these params. A name no plugin takes needs nothing more here.
 */
export function assertCallerMayRun(
  plugins: PluginResolver,
  caller: Principal,
  task: { name: string; command?: string | null; params?: Record<string, unknown> },
): void {
  const command = task.command ?? null;
  const resolved = plugins.resolve(task.name, command !== null);
  if (resolved) requirePluginScope(resolved.plugin, caller, task.params ?? {}, command);
}

/**
 * Accepts a task: checks it (prepareTask), applies the configured defaults and limits, and
 * stores it with its task.created event and queue signal. A returned task is committed.
 */
export async function createTask(
  deps: CreateTaskDeps,
  namespace: string,
  input: CreateTaskInput,
): Promise<StoredTask> {
  const command = input.command ?? null;
  const { handler, params, timeout_seconds: timeout } = prepareTask(deps, input);

  const now = deps.now();
  const runAt = input.run_at && input.run_at > now ? input.run_at : now;
  // The task as it is stored, written out whole: its view at creation goes into task.created.
  const task: Task = {
    id: newId("tsk"),
    namespace,
    name: input.name,
    description: input.description ?? null,
    command,
    handler,
    params,
    status: "queued",
    priority: input.priority ?? 5,
    attempt: 0,
    infra_retries: 0,
    series: 0,
    max_attempts: input.max_attempts ?? deps.config.default_max_attempts,
    timeout_seconds: timeout,
    schedule_id: input.schedule_id ?? null,
    labels: input.labels ?? {},
    run_at: runAt,
    created_at: now,
    updated_at: now,
    started_at: null,
    finished_at: null,
    lease_owner: null,
    lease_expires_at: null,
    progress: null,
    result: null,
    error: null,
  };
  const viewAtCreation = toTaskView(task);
  return deps.tasks.insert(
    task,
    newEvent("task.created", namespace, { task: viewAtCreation }, now),
    { task_id: task.id, attempt: 1, priority: task.priority, run_at: runAt.toISOString() },
    deps.audit?.(task.id),
  );
}
