/**
 * The API baseline: a bare Node HTTP server doing the least a task API could, one
 * INSERT ... RETURNING per POST /task/create and one SELECT per GET /task/{id}, on a pool
 * of the size TME's own (db.pool.max). No auth, validation, events or outbox: the floor
 * that TME's API is compared with. Forked by the harness; sends {port} when it listens.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";

const [databaseUrl, poolMax] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: databaseUrl, max: Number(poolMax ?? 10) });

await pool.query(`CREATE TABLE IF NOT EXISTS bare_tasks (
  id text PRIMARY KEY,
  name text NOT NULL,
  params jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'queued',
  created_at timestamptz NOT NULL DEFAULT now()
)`);

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const handle = async () => {
      if (req.method === "POST" && req.url === "/task/create") {
        const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as {
          name?: string;
          params?: unknown;
        };
        const { rows } = await pool.query(
          "INSERT INTO bare_tasks (id, name, params) VALUES ($1, $2, $3) RETURNING *",
          [randomUUID(), body.name ?? "noop", JSON.stringify(body.params ?? {})],
        );
        return reply(res, 201, rows[0]);
      }
      const id = req.method === "GET" ? /^\/task\/([^/?]+)$/.exec(req.url ?? "")?.[1] : undefined;
      if (id) {
        const { rows } = await pool.query("SELECT * FROM bare_tasks WHERE id = $1", [id]);
        return rows[0] ? reply(res, 200, rows[0]) : reply(res, 404, { error: "not found" });
      }
      reply(res, 404, { error: "no route" });
    };
    handle().catch((error: unknown) => reply(res, 500, { error: String(error) }));
  });
});

server.listen(0, "127.0.0.1", () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on("message", (message) => {
  if (message !== "stop") return;
  server.close(() => void pool.end().finally(() => process.exit(0)));
  server.closeAllConnections();
});
