/**
 * A TCP proxy on loopback for fault tests: every connection to it is forwarded to a target port, and
 * the network between them can be made to misbehave. `stall()` stops forwarding data in both
 * directions while keeping every socket open (a network that silently stops delivering, not one that
 * refuses: nothing is reset and nothing is closed); `resume()` delivers what was held back, in order.
 * `dropAll()` cuts every connection at once.
 */
import net from 'node:net';

export interface TcpProxyOptions {
  /** Port to forward to. */
  targetPort: number;
  /** Host to forward to; default 127.0.0.1. */
  targetHost?: string;
  /** Address the proxy listens on; default 127.0.0.1. */
  host?: string;
  /** Port the proxy listens on; default a free one. */
  port?: number;
}

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** Whether forwarding is stopped. */
  readonly stalled: boolean;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  /** Stops forwarding data both ways; sockets stay open and new connections are accepted but held. */
  stall(): void;
  /** Forwards again, starting with whatever was held back. */
  resume(): void;
  /** Closes every connection through the proxy, both sides (each sees its peer hang up); keeps listening. */
  dropAll(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** One direction of a connection: data read from `from` is written to `to`. */
class Direction {
  /** Waiting for `to` to drain. */
  blocked = false;
  /** Cut: nothing more is forwarded. */
  stopped = false;

  constructor(
    readonly from: net.Socket,
    readonly to: net.Socket,
    private readonly isStalled: () => boolean,
  ) {
    from.on('data', (chunk: Buffer) => {
      if (this.stopped || to.destroyed) return;
      if (!to.write(chunk)) {
        this.blocked = true;
        from.pause();
        to.once('drain', () => {
          this.blocked = false;
          this.resume();
        });
      }
    });
    // A half-close travels like data: held while stalled (paused sockets emit no 'end').
    from.on('end', () => {
      if (!this.stopped) to.end();
    });
  }

  pause(): void {
    this.from.pause();
  }

  /** Forwards nothing more (what arrives is read and discarded). */
  stop(): void {
    this.stopped = true;
    this.from.resume();
  }

  resume(): void {
    if (!this.stopped && !this.blocked && !this.isStalled() && !this.from.destroyed) this.from.resume();
  }
}

/** A client connection and its upstream connection. */
interface Link {
  sockets: [net.Socket, net.Socket];
  directions: [Direction, Direction];
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const targetHost = options.targetHost ?? '127.0.0.1';
  const host = options.host ?? '127.0.0.1';
  let stalled = false;
  const links = new Set<Link>();
  const isStalled = () => stalled;

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const upstream = net.connect({ host: targetHost, port: options.targetPort, allowHalfOpen: true });
    upstream.pause();
    const link: Link = {
      sockets: [client, upstream],
      directions: [new Direction(client, upstream, isStalled), new Direction(upstream, client, isStalled)],
    };
    links.add(link);
    for (const socket of link.sockets) {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.on('close', (hadError) => {
        const other = socket === client ? upstream : client;
        // A reset (or a refused upstream) resets the other side; a clean close has already ended it.
        if (hadError || other.connecting) other.destroy();
        else other.end();
        if (client.destroyed && upstream.destroyed) links.delete(link);
      });
    }
    for (const d of link.directions) d.resume();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: options.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  const destroyAll = () => {
    for (const link of links) for (const socket of link.sockets) socket.destroy();
  };
  // Each side sees its peer hang up (a FIN, not a reset), and nothing more crosses.
  const dropAll = () => {
    for (const link of links) {
      for (const d of link.directions) d.stop();
      for (const socket of link.sockets) socket.destroySoon();
    }
  };

  return {
    host,
    port,
    get stalled() {
      return stalled;
    },
    get connections() {
      return links.size;
    },
    stall() {
      stalled = true;
      for (const link of links) for (const d of link.directions) d.pause();
    },
    resume() {
      stalled = false;
      for (const link of links) for (const d of link.directions) d.resume();
    },
    dropAll,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        destroyAll();
      });
    },
  };
}
