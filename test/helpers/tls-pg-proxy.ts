import net from "node:net";
import tls from "node:tls";

/** PostgreSQL's SSLRequest code: the client asks for TLS before its startup message. */
const SSL_REQUEST_CODE = 80877103;

export interface TlsPgProxy {
  port: number;
  /** Cuts every connection, as a rotation or failover leaves a warm pool's connections dead. */
  dropAll(): void;
  close(): Promise<void>;
}

/**
 * A stand-in for RDS Proxy in front of a plain PostgreSQL server: it answers the client's
 * SSLRequest, terminates TLS with the given certificate and relays the rest to the server.
 * A client that does not ask for TLS is refused, as requireTLS does.
 */
export async function startTlsPgProxy(options: {
  backendPort: number;
  key: string;
  cert: string;
}): Promise<TlsPgProxy> {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    client.once("data", (first: Buffer) => {
      if (first.length !== 8 || first.readInt32BE(4) !== SSL_REQUEST_CODE) {
        client.destroy();
        return;
      }
      client.write("S");
      const secure = new tls.TLSSocket(client, { isServer: true, key: options.key, cert: options.cert });
      const backend = net.connect(options.backendPort, "127.0.0.1");
      track(backend);
      secure.on("error", () => {
        client.destroy();
        backend.destroy();
      });
      backend.on("close", () => client.destroy());
      client.on("close", () => backend.destroy());
      secure.pipe(backend).pipe(secure);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    dropAll: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
