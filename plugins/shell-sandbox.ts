import { spawnSync } from "node:child_process";
import {
  accessSync,
  chownSync,
  constants,
  existsSync,
  lstatSync,
  mkdtempSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../functions/config/load.js";
import type { AppConfig } from "../functions/config/schema.js";
import { InternalError } from "../functions/core/errors.js";

/**
 * Where a command runs, kept from TME (finding 1: a tasks:write key read the data directory,
 * TME's /proc/<pid>/environ and could edit plugins/*.ts).
 *
 * - `sandbox`: bubblewrap. New pid, user, ipc and uts namespaces (and net with network: none),
 *   uid and gid 65534 inside; bubblewrap itself is started as uid 65534 when TME is root, so the
 *   command is nobody outside too (as root, a user namespace's 65534 would map back to root).
 *   It sees read-only /usr (and the /bin, /lib... links to it) and /etc without its secret
 *   files, a fresh /proc of its own pid namespace, a minimal /dev, a private /tmp that is also
 *   its working directory and HOME (gone with the sandbox), and the operator's
 *   shell.sandbox_read_only / sandbox_read_write paths. Not TME's data directory, repository or
 *   configuration, not the host's /proc, /sys, /run, /home, /root or /var.
 * - `unprivileged_user` (auto, no bubblewrap, TME is root): the command runs as uid 65534 in a
 *   fresh work directory; it sees the host's files as "other" does, and /proc, but cannot read
 *   TME's 0700 data directory nor the environment of TME's processes.
 * - `none`: TME's own user, as before (shell.sandbox: none, or auto where neither is possible).
 *
 * The environment is the allowlisted variables only, passed as bubblewrap's own environment
 * rather than with --clearenv and --setenv, whose values would show in the host's process table.
 */
export type IsolationKind = "sandbox" | "unprivileged_user" | "none";

export interface CommandIsolation {
  kind: IsolationKind;
  /** One line for /health and the start log: what is in force and why. */
  detail: string;
}

/** The uid and gid a sandboxed or unprivileged command runs as: nobody/nogroup on Debian. */
export const SANDBOX_UID = 65534;

type ShellConfig = AppConfig["shell"];

/** TME's own repository: the directory above plugins/. */
const REPOSITORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** /etc files and directories that hold host secrets, covered inside the sandbox. */
const ETC_SECRETS = [
  "/etc/shadow",
  "/etc/shadow-",
  "/etc/gshadow",
  "/etc/gshadow-",
  "/etc/sudoers",
  "/etc/sudoers.d",
  "/etc/ssh",
  "/etc/ssl/private",
  "/etc/security/opasswd",
];

/** Top-level paths that are links into /usr on a merged-/usr system, or directories elsewhere. */
const SYSTEM_LINKS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

interface SandboxLayout {
  /** Host directories visible inside at the same path (real paths), and whether writable. */
  visible: Array<{ path: string; writable: boolean }>;
  /** bubblewrap's arguments up to (not including) "--". */
  args(cwd: string): string[];
}

/**
 * The sandbox's mounts for this configuration, or a ConfigError when an extra path would show
 * TME to its commands. `hide`: TME's own directories (data, configuration), covered wherever they
 * fall inside a visible path.
 */
export function sandboxLayout(shell: ShellConfig, hide: readonly string[]): SandboxLayout {
  const own = [REPOSITORY, ...hide].map((p) => realOrResolved(p));
  const extras = [
    ...shell.sandbox_read_only.map((p) => ({ path: p, writable: false })),
    ...shell.sandbox_read_write.map((p) => ({ path: p, writable: true })),
  ];
  for (const extra of extras) {
    const real = realOrResolved(extra.path);
    const key = extra.writable ? "shell.sandbox_read_write" : "shell.sandbox_read_only";
    const clash = own.find((o) => isInside(real, o) || isInside(o, real));
    if (clash) {
      throw new ConfigError(
        `${key}: ${extra.path} overlaps TME's own ${clash} (its code, data or configuration): commands must not see it; use another directory`,
      );
    }
    if (!existsSync(real)) throw new ConfigError(`${key}: ${extra.path} does not exist`);
  }
  const visible = [
    { path: "/usr", writable: false },
    { path: "/etc", writable: false },
    ...extras.map((e) => ({ path: realOrResolved(e.path), writable: e.writable })),
  ];
  for (const link of SYSTEM_LINKS) {
    const stat = lstatOrUndefined(link);
    if (stat?.isDirectory()) visible.push({ path: link, writable: false });
  }
  const covered = own.filter((o) => visible.some((v) => isInside(o, v.path)) && existsSync(o));

  return {
    visible,
    args(cwd) {
      const args = [
        "--unshare-pid",
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        ...(shell.network === "none" ? ["--unshare-net"] : []),
        "--uid",
        String(SANDBOX_UID),
        "--gid",
        String(SANDBOX_UID),
        "--hostname",
        "tme-sandbox",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/usr",
        "/usr",
      ];
      for (const link of SYSTEM_LINKS) {
        const stat = lstatOrUndefined(link);
        if (stat?.isSymbolicLink()) args.push("--symlink", readlinkSync(link), link);
        else if (stat?.isDirectory()) args.push("--ro-bind", link, link);
      }
      args.push("--ro-bind", "/etc", "/etc");
      // A resolv.conf that links outside /etc (systemd-resolved's stub) must come along for DNS.
      const resolv = lstatOrUndefined("/etc/resolv.conf");
      if (resolv?.isSymbolicLink() && shell.network === "allow") {
        const target = realOrResolved("/etc/resolv.conf");
        if (!isInside(target, "/etc") && !isInside(target, "/usr") && existsSync(target))
          args.push("--ro-bind", target, target);
      }
      for (const secret of ETC_SECRETS) {
        const stat = lstatOrUndefined(secret);
        if (stat?.isDirectory()) args.push("--tmpfs", secret);
        else if (stat?.isFile()) args.push("--ro-bind", "/dev/null", secret);
      }
      args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp");
      for (const extra of visible.slice(2)) {
        if (SYSTEM_LINKS.includes(extra.path)) continue;
        args.push(extra.writable ? "--bind" : "--ro-bind", extra.path, extra.path);
      }
      for (const o of covered) args.push("--tmpfs", o);
      // The root (bubblewrap's own tmpfs) read-only: /tmp and the writable binds stay writable.
      args.push("--remount-ro", "/", "--chdir", cwd);
      return args;
    },
  };
}

/** The argv, environment and user a command is started with under an isolation. */
export interface IsolatedCommand {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Marks the bubblewrap monitor as the supervisor's child (see plugins/shell-supervisor.ts). */
  sandboxed: boolean;
  /** Removes what the run left (the unprivileged work directory). */
  cleanup(): void;
}

/** A command that cannot start in this isolation (not visible there): fails without retry. */
export class CommandNotVisible extends InternalError {
  override name = "CommandNotVisible";
}

const runningAsRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

/**
 * Wraps one command for the isolation in force. `cwd` is the task's params.cwd: a path inside the
 * sandbox (default: its private /tmp).
 */
export function isolateCommand(
  isolation: ResolvedIsolation,
  argv: string[],
  env: Record<string, string>,
  cwd: string | undefined,
): IsolatedCommand {
  if (isolation.kind === "sandbox") {
    const layout = isolation.layout!;
    const inside = cwd ?? "/tmp";
    if (inside !== "/tmp" && !layout.visible.some((v) => isInside(realOrResolved(inside), v.path))) {
      throw new CommandNotVisible(
        `params.cwd ${inside} is not visible in the sandbox (it sees /tmp, ${layout.visible.map((v) => v.path).join(", ")})`,
      );
    }
    checkProgramVisible(
      argv[0]!,
      env.PATH,
      layout.visible.map((v) => v.path),
    );
    // Allowlisted HOME and TMPDIR name host paths it cannot see: its /tmp stands for both.
    const sandboxEnv = { ...env, ...inPlaceOf(env, "/tmp") };
    return {
      argv: [isolation.bwrapPath, ...layout.args(inside), "--", ...argv],
      env: sandboxEnv,
      cwd: "/",
      ...(runningAsRoot() ? { uid: SANDBOX_UID, gid: SANDBOX_UID } : {}),
      sandboxed: true,
      cleanup() {},
    };
  }
  if (isolation.kind === "unprivileged_user") {
    // A work directory of its own, the only place it may write besides what "other" may.
    const work = mkdtempSync(path.join(os.tmpdir(), "tme-run-"));
    chownSync(work, SANDBOX_UID, SANDBOX_UID);
    return {
      argv,
      env: { ...env, ...inPlaceOf(env, work) },
      cwd: cwd ?? work,
      uid: SANDBOX_UID,
      gid: SANDBOX_UID,
      sandboxed: false,
      cleanup: () => rmSync(work, { recursive: true, force: true }),
    };
  }
  return { argv, env, cwd, sandboxed: false, cleanup() {} };
}

function inPlaceOf(env: Record<string, string>, dir: string): Record<string, string> {
  const replaced: Record<string, string> = {};
  for (const name of ["HOME", "TMPDIR"]) if (env[name] !== undefined) replaced[name] = dir;
  return replaced;
}

/** ENOENT before the sandbox starts, with where it looked, rather than bubblewrap's exit 1. */
function checkProgramVisible(program: string, searchPath: string | undefined, roots: string[]): void {
  const visible = (candidate: string) => {
    try {
      accessSync(candidate, constants.X_OK);
      const real = realpathSync(candidate);
      return roots.some((root) => isInside(real, root)) && lstatSync(real).isFile();
    } catch {
      return false;
    }
  };
  const candidates = program.includes("/")
    ? [program]
    : (searchPath ?? "/usr/local/bin:/usr/bin:/bin")
        .split(":")
        .filter((dir) => dir.startsWith("/"))
        .map((dir) => path.join(dir, program));
  if (candidates.some(visible)) return;
  throw new CommandNotVisible(
    `${program}: not found in the sandbox (it sees ${roots.join(", ")} and its own /tmp; ` +
      "add a directory with shell.sandbox_read_only)",
  );
}

/** The isolation in force for a configuration, with what running a command under it needs. */
export interface ResolvedIsolation extends CommandIsolation {
  bwrapPath: string;
  layout?: SandboxLayout;
}

const resolved = new Map<string, ResolvedIsolation>();
let registered: string[] | undefined;

/**
 * The isolation commands get under this configuration, decided once per process and setting:
 * for auto and required, bubblewrap is tried for real (a sandbox that runs /bin/true, as the
 * user commands will run as), since an installed binary proves nothing where user namespaces
 * are off. required with no working bubblewrap throws a ConfigError (one line, at start).
 */
export function resolveIsolation(shell: ShellConfig, tmeDirectories?: readonly string[]): ResolvedIsolation {
  // The runtime names TME's directories at start; a plugin's later call uses the same.
  if (tmeDirectories) registered = [...tmeDirectories];
  const hide = registered ?? defaultHidden();
  const key = JSON.stringify([
    shell.sandbox,
    shell.network,
    shell.bwrap_path,
    shell.sandbox_read_only,
    shell.sandbox_read_write,
    hide,
  ]);
  const known = resolved.get(key);
  if (known) return known;
  const result = decide(shell, hide);
  resolved.set(key, result);
  return result;
}

/** TME's data and configuration directories by the rules of functions/config/load.ts. */
function defaultHidden(): string[] {
  return [
    path.resolve(process.env.TME_DATA_DIR || ".tme"),
    path.resolve(process.env.TME_CONFIG_DIR ?? "configurations"),
  ];
}

function decide(shell: ShellConfig, hide: readonly string[]): ResolvedIsolation {
  const base = { bwrapPath: shell.bwrap_path };
  const root = runningAsRoot();
  const who = root ? "TME's own user (root)" : `TME's own user (uid ${process.getuid?.() ?? "?"})`;
  if (shell.sandbox === "none") {
    return {
      ...base,
      kind: "none",
      detail: `shell.sandbox is none: commands run as ${who} and can read what TME can (its data directory, repository, configuration, /proc)`,
    };
  }
  const layout = sandboxLayout(shell, hide);
  const failure = probeBubblewrap(shell.bwrap_path, layout, root);
  if (failure === undefined) {
    const net = shell.network === "none" ? "no network (own loopback)" : "the host's network";
    const outside = root ? `uid ${SANDBOX_UID} outside too` : `TME's uid ${process.getuid?.()} outside`;
    return {
      ...base,
      kind: "sandbox",
      layout,
      detail: `bubblewrap (${shell.bwrap_path}): own pid, user, ipc and uts namespaces, uid ${SANDBOX_UID} inside and ${outside}, read-only /usr and /etc, private /tmp, ${net}`,
    };
  }
  if (shell.sandbox === "required") {
    throw new ConfigError(
      `shell.sandbox is required but bubblewrap cannot run commands here (${failure}): install the bubblewrap package, set shell.bwrap_path (SHELL_BWRAP_PATH), or choose shell.sandbox auto or none`,
    );
  }
  if (root) {
    return {
      ...base,
      kind: "unprivileged_user",
      detail: `no sandbox (${failure}): commands run as uid ${SANDBOX_UID} in a work directory of their own; they see the host's files as any user does, and /proc`,
    };
  }
  return {
    ...base,
    kind: "none",
    detail: `no sandbox (${failure}) and TME is not root: commands run as ${who} and can read what TME can (its data directory, repository, configuration, its processes' environment)`,
  };
}

/** Undefined when a sandbox runs /bin/true; else why not, in a few words. */
function probeBubblewrap(bwrapPath: string, layout: SandboxLayout, root: boolean): string | undefined {
  if (!existsSync(bwrapPath)) return `${bwrapPath} does not exist`;
  const probe = spawnSync(bwrapPath, [...layout.args("/tmp"), "--", "/bin/true"], {
    env: {},
    cwd: "/",
    timeout: 10_000,
    encoding: "utf8",
    ...(root ? { uid: SANDBOX_UID, gid: SANDBOX_UID } : {}),
  });
  if (probe.error) return `${bwrapPath}: ${probe.error.message}`;
  if (probe.status === 0) return undefined;
  const said = (probe.stderr ?? "").trim().split("\n")[0] ?? "";
  return `${bwrapPath} exited ${probe.status ?? probe.signal}${said ? `: ${said}` : ""}`;
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
