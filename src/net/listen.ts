// TCP and TLS listeners for the configured "host:port" addresses.
import { createServer, type Server as NetServer, type Socket, type AddressInfo } from "node:net";
import { createServer as createTlsServer, type TlsOptions } from "node:tls";

/** Split "host:port" or "[v6]:port". */
export function parseListenAddress(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr);
  if (!m) throw new Error(`invalid listen address ${addr}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in ${addr}`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Listen on one address; resolves with the bound address once it accepts connections. */
export function listen(addr: string, onSocket: (socket: Socket) => void, tls?: TlsOptions): Promise<{ server: NetServer; address: AddressInfo }> {
  const { host, port } = parseListenAddress(addr);
  const server = tls ? createTlsServer(tls, onSocket) : createServer({ noDelay: true }, onSocket);
  if (tls) {
    // A client that never completes the handshake must not keep an error unhandled.
    server.on("tlsClientError", () => {});
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, backlog: 1024 }, () => {
      server.removeListener("error", reject);
      resolve({ server, address: server.address() as AddressInfo });
    });
  });
}
