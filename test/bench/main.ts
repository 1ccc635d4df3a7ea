import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import cliProgress from "cli-progress";
import { REPO_ROOT } from "../helpers/tme-process.js";
import { chartSvg } from "./chart.js";
import { type BenchOptions, FULL, QUICK, runBench } from "./harness.js";
import { type BenchResult, machineLine, markdownTable } from "./report.js";
import { liveProcesses } from "./tme.js";

export interface BenchCommandOptions {
  quick?: boolean;
  tasks?: string;
  repeats?: string;
  concurrency?: string;
  pickupTasks?: string;
  pickupRate?: string;
  apiSeconds?: string;
  drainCapSeconds?: string;
  listingBacklog?: string;
  databaseUrl?: string;
  out?: string;
  /** Default: a bar on a terminal, a line every few seconds otherwise. */
  progress?: boolean;
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`--${name}: a positive number, got ${JSON.stringify(value)}`);
  return n;
}

export function benchOptions(command: BenchCommandOptions): Omit<BenchOptions, "onProgress"> {
  const base = command.quick ? QUICK : FULL;
  const concurrencies = command.concurrency
    ? command.concurrency.split(",").map((c) => Math.round(positive("concurrency", c.trim(), 1)))
    : base.concurrencies;
  return {
    tasks: Math.round(positive("tasks", command.tasks, base.tasks)),
    repeats: Math.round(positive("repeats", command.repeats, base.repeats)),
    concurrencies,
    pickupTasks: Math.round(positive("pickup-tasks", command.pickupTasks, base.pickupTasks)),
    pickupRate: positive("pickup-rate", command.pickupRate, base.pickupRate),
    apiSeconds: Math.round(positive("api-seconds", command.apiSeconds, base.apiSeconds)),
    apiConnections: base.apiConnections,
    drainCapSeconds: positive("drain-cap-seconds", command.drainCapSeconds, base.drainCapSeconds),
    listingBacklog: Math.round(positive("listing-backlog", command.listingBacklog, base.listingBacklog)),
    adminUrl: command.databaseUrl,
  };
}

/** Writes <name>.json, <name>.svg and <name>.md (the table, the command, the machine) under dir. */
export async function writeResults(
  result: BenchResult,
  dir: string,
  name: string,
  command: string,
): Promise<{ json: string; svg: string; md: string }> {
  mkdirSync(dir, { recursive: true });
  const files = {
    json: path.join(dir, `${name}.json`),
    svg: path.join(dir, `${name}.svg`),
    md: path.join(dir, `${name}.md`),
  };
  writeFileSync(files.json, `${JSON.stringify({ command, ...result }, null, 2)}\n`);
  writeFileSync(files.svg, await chartSvg(result));
  writeFileSync(
    files.md,
    `${markdownTable(result)}\n\n\`${command}\`, ${result.startedAt.slice(0, 16)} UTC: ${machineLine(result)}.\n`,
  );
  return files;
}

/** `tme bench` / `npm run bench`: runs, prints the table, writes the results. */
export async function benchCommand(command: BenchCommandOptions, argv: string[]): Promise<void> {
  const options = benchOptions(command);
  const commandLine = `npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}`;
  const showProgress = command.progress ?? true;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "bench {bar} {percentage}% | {duration_formatted} | {step}",
      noTTYOutput: true,
      notTTYSchedule: 5000,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const interrupted = (signal: NodeJS.Signals) => {
    if (showProgress) bar.stop();
    for (const kill of liveProcesses) kill();
    process.stderr.write(`bench: ${signal}: stopped (its databases are dropped by the next run)\n`);
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  if (showProgress) bar.start(1000, 0, { step: "starting" });
  let result: BenchResult;
  try {
    result = await runBench({
      ...options,
      onProgress: (fraction, step) => {
        if (showProgress) bar.update(Math.round(fraction * 1000), { step });
      },
    });
  } finally {
    if (showProgress) bar.stop();
  }
  const dir = path.resolve(command.out ?? path.join(REPO_ROOT, "bench/results"));
  const files = await writeResults(result, dir, command.quick ? "quick" : "latest", commandLine);
  process.stdout.write(`\n${markdownTable(result)}\n\n${machineLine(result)}\n`);
  process.stdout.write(
    `written: ${path.relative(process.cwd(), files.json)}, ${path.relative(process.cwd(), files.svg)}, ${path.relative(process.cwd(), files.md)}\n`,
  );
}
