import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { sleep, waitFor } from './helpers.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** A client socket that collects what it receives. */
async function connectTo(port: number): Promise<{ socket: net.Socket; received: () => string }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let data = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    data += chunk;
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data };
}

describe('startTcpProxy', () => {
  let echo: net.Server;
  let echoPort: number;
  const served = new Set<net.Socket>();
  let proxy: TcpProxy;

  before(async () => {
    echo = net.createServer((socket) => {
      served.add(socket);
      socket.on('close', () => served.delete(socket));
      socket.on('error', () => {});
      socket.on('data', (chunk) => socket.write(chunk.toString().toUpperCase()));
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as net.AddressInfo).port;
    proxy = await startTcpProxy({ targetPort: echoPort });
  });
  after(async () => {
    await proxy?.close();
    for (const socket of served) socket.destroy();
    await new Promise((resolve) => echo.close(resolve));
  });

  it('forwards both ways on 127.0.0.1', async () => {
    assert.equal(proxy.host, '127.0.0.1');
    assert.notEqual(proxy.port, echoPort);
    const { socket, received } = await connectTo(proxy.port);
    try {
      socket.write('hello');
      await waitFor('the echo', () => received() === 'HELLO');
      assert.equal(proxy.connections, 1);
    } finally {
      socket.destroy();
    }
    await waitFor('the connection to be gone', () => proxy.connections === 0 && served.size === 0);
  });

  it('stall() holds data in both directions and keeps the sockets open; resume() delivers it in order', async () => {
    const { socket, received } = await connectTo(proxy.port);
    let closed = false;
    socket.on('close', () => {
      closed = true;
    });
    try {
      socket.write('a');
      await waitFor('the first echo', () => received() === 'A');
      const upstream = [...served][0] as net.Socket;

      proxy.stall();
      assert.equal(proxy.stalled, true);
      socket.write('b');
      socket.write('c');
      upstream.write('x'); // server to client
      await sleep(300);
      assert.equal(received(), 'A', 'data crossed a stalled proxy');
      assert.equal(closed, false);
      assert.equal(served.size, 1);

      // A connection made while stalled is accepted and held too.
      const late = await connectTo(proxy.port);
      late.socket.write('late');
      await sleep(100);
      assert.equal(late.received(), '');

      proxy.resume();
      // Each direction keeps its order; the two directions are independent.
      await waitFor('the held data', () => received().length === 4 && late.received() === 'LATE');
      assert.equal(received().replace('x', ''), 'ABC');
      assert.ok(received().includes('x'));
      late.socket.destroy();
    } finally {
      proxy.resume();
      socket.destroy();
    }
    await waitFor('the connections to be gone', () => proxy.connections === 0 && served.size === 0);
  });

  it('dropAll() cuts every connection and keeps listening; close() stops it', async () => {
    const one = await connectTo(proxy.port);
    const two = await connectTo(proxy.port);
    const closed = [one, two].map(
      (c) => new Promise<void>((resolve) => c.socket.once('close', () => resolve())),
    );
    await waitFor('both connections', () => served.size === 2);
    proxy.dropAll();
    await Promise.all(closed);
    await waitFor('the upstream side to be closed too', () => served.size === 0 && proxy.connections === 0);

    const again = await connectTo(proxy.port);
    again.socket.write('still here');
    await waitFor('the echo after dropAll', () => again.received() === 'STILL HERE');

    const other = await startTcpProxy({ targetPort: echoPort });
    const held = await connectTo(other.port);
    const heldClosed = new Promise<void>((resolve) => held.socket.once('close', () => resolve()));
    await other.close();
    await heldClosed;
    await assert.rejects(connectTo(other.port), { code: 'ECONNREFUSED' });
    again.socket.destroy();
  });

  it('a refused target closes the client connection', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const dead = await startTcpProxy({ targetPort: closedPort });
    try {
      const { socket } = await connectTo(dead.port);
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      assert.equal(dead.connections, 0);
    } finally {
      await dead.close();
    }
  });
});
