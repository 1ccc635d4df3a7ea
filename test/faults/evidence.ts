import { existsSync, readFileSync } from "node:fs";
import net from "node:net";

/**
 * Evidence from outside TME: each command appends "start <task> <ns> <pid>" when it begins and
 * "end <task> <ns> <pid>" when it ends (or is killed: the trap writes the line on SIGTERM), so
 * overlaps are measured from what really ran, not from TME's rows.
 */
export function evidenceCommand(file: string, taskTag: string, seconds: number): string {
  // The trap is set before the start line: a SIGTERM that lands between the two would otherwise
  // end the shell with a start and no end (an end without a start is ignored).
  return (
    `sh -c 'e() { echo $1 ${taskTag} $(date +%s%N) $$ >> ${file}; }; trap "e end; exit 143" TERM; ` +
    `e start; sleep ${seconds} & wait $!; e end'`
  );
}

export interface Execution {
  tag: string;
  pid: number;
  startNs: bigint;
  /** undefined: no end line (killed with SIGKILL, or still running). */
  endNs: bigint | undefined;
}

export function executions(file: string): Execution[] {
  if (!existsSync(file)) return [];
  const open = new Map<string, Execution>();
  const all: Execution[] = [];
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const [what, tag, ns, pid] = raw.trim().split(" ");
    if (!what || !tag || !ns || !pid) continue;
    const key = `${tag}/${pid}`;
    if (what === "start") {
      const e = { tag, pid: Number(pid), startNs: BigInt(ns), endNs: undefined };
      open.set(key, e);
      all.push(e);
    } else if (what === "end") {
      const e = open.get(key);
      if (e && e.endNs === undefined) e.endNs = BigInt(ns);
    }
  }
  return all;
}

/** Pairs of executions of one tag whose intervals intersect (an execution without an end is open). */
export function overlaps(all: Execution[], isAlive: (pid: number) => boolean): Array<[Execution, Execution]> {
  const byTag = new Map<string, Execution[]>();
  for (const e of all) byTag.set(e.tag, [...(byTag.get(e.tag) ?? []), e]);
  const found: Array<[Execution, Execution]> = [];
  for (const list of byTag.values()) {
    list.sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
    for (let i = 1; i < list.length; i++) {
      const previous = list[i - 1]!;
      const next = list[i]!;
      // An execution that never wrote its end line ran until its process died; if that
      // process still lives, it is still running.
      const previousEnd =
        previous.endNs ?? (isAlive(previous.pid) ? BigInt(Number.MAX_SAFE_INTEGER) * 1000n : undefined);
      if (previousEnd === undefined) {
        found.push([previous, next]);
        continue;
      }
      if (previousEnd > next.startNs) found.push([previous, next]);
    }
  }
  return found;
}

/**
 * A TCP proxy in front of PostgreSQL that can cut its clients off the way a network partition
 * does: `freeze()` stops forwarding in both directions and keeps the sockets open (no FIN, no
 * RST), so the client only learns of it from timeouts; `heal()` resumes; new connections
 * during a freeze hang too.
 */
export interface FaultProxy {
  port: number;
  freeze(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<FaultProxy> {
  let frozen = false;
  const pairs = new Set<{ client: net.Socket; server: net.Socket }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    const pair = { client, server: upstream };
    pairs.add(pair);
    const pipe = (from: net.Socket, to: net.Socket) =>
      from.on("data", (chunk) => {
        if (!frozen) to.write(chunk);
        // Frozen: bytes are dropped, as on a dead link (TCP would retransmit, then give up).
      });
    pipe(client, upstream);
    pipe(upstream, client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    heal: () => {
      // Connections that lived through the partition lost bytes: they are broken, as TCP
      // would have declared them; new ones work.
      for (const pair of pairs) {
        pair.client.destroy();
        pair.server.destroy();
      }
      frozen = false;
    },
    close: async () => {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.server.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
