import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

// Runs in the child: the bundle's handler, fed one invocation per stdin line, answering on
// fd 3 (stdout is the function's log, as in Lambda).
const RUNTIME = `
import { createWriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
const answers = createWriteStream("", { fd: 3 });
const { handler } = await import(pathToFileURL(process.argv[2]).href);
for await (const line of createInterface({ input: process.stdin })) {
  const { id, event, functionName } = JSON.parse(line);
  const deadline = Date.now() + 60_000;
  const context = {
    awsRequestId: id, functionName, functionVersion: "$LATEST", memoryLimitInMB: "512",
    invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:" + functionName,
    logGroupName: "/aws/lambda/" + functionName, logStreamName: "local", callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    answers.write(JSON.stringify({ id, result: await handler(event, context) }) + "\\n");
  } catch (error) {
    answers.write(JSON.stringify({ id, error: String(error?.stack ?? error) }) + "\\n");
  }
}
`;

/**
 * A warm Lambda container stand-in: one long-lived process per function running the built
 * bundle with the given environment and nothing else, invoked like Lambda invokes it.
 */
export class LambdaHost {
  private readonly child: ChildProcess;
  private readonly pending = new Map<string, (answer: { result?: unknown; error?: string }) => void>();
  /** Everything the function logged, for a failure's message. */
  readonly log: string[] = [];

  constructor(
    readonly functionName: string,
    bundleDir: string,
    env: Record<string, string>,
  ) {
    const runtime = path.join(bundleDir, ".test-runtime.mjs");
    writeFileSync(runtime, RUNTIME);
    this.child = spawn(process.execPath, [runtime, path.join(bundleDir, "index.mjs")], {
      cwd: bundleDir,
      // What Lambda's runtime says of an on-demand container (Powertools reads it for cold starts).
      env: { AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand", ...env },
      stdio: ["pipe", "pipe", "pipe", "pipe"],
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      createInterface({ input: stream as Readable }).on("line", (line) => this.log.push(line));
    }
    createInterface({ input: this.child.stdio[3] as Readable }).on("line", (line) => {
      const answer = JSON.parse(line) as { id: string; result?: unknown; error?: string };
      this.pending.get(answer.id)?.(answer);
      this.pending.delete(answer.id);
    });
    this.child.on("exit", (code) => {
      for (const resolve of this.pending.values()) resolve({ error: `process exited with ${code}` });
      this.pending.clear();
    });
  }

  /** Invokes the handler; a thrown error comes back as a rejection carrying the function's log. */
  async invoke<T = any>(event: unknown): Promise<T> {
    const id = randomUUID();
    const answer = await new Promise<{ result?: unknown; error?: string }>((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ id, event, functionName: this.functionName })}\n`);
    });
    if (answer.error !== undefined) {
      throw new Error(
        `${this.functionName}: ${answer.error}\n--- log ---\n${this.log.slice(-30).join("\n")}`,
      );
    }
    return answer.result as T;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await exited;
  }
}
