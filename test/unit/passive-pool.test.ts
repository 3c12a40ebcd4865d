/**
 * PassivePortPool: listeners are reused only after their data connection
 * arrived, closed when their channel ends without one, and idle ones give
 * way when another local address needs the range. Real sockets on loopback.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { PassivePortPool, type PassiveListener, type PortRange } from '../../src/data/passive.js';

function isFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** `size` consecutive ports free on 127.0.0.1 and 127.0.0.2, below the ephemeral range; bounded search. */
async function freeRange(size: number): Promise<PortRange> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const min = 20_000 + Math.floor(Math.random() * 10_000);
    let ok = true;
    for (let port = min; ok && port < min + size; port++) ok = (await isFree(port)) && (await isFree(port, '127.0.0.2'));
    if (ok) return { min, max: min + size - 1 };
  }
  throw new Error('no free port range found');
}

/** What a connection to host:port meets: 'refused', or 'closed' (accepted, then closed without a byte). */
function probe(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? 'error')));
    socket.once('close', () => resolve(bytes === 0 ? 'closed' : `got ${bytes} bytes`));
    setTimeout(() => (socket.destroy(), resolve('still open')), 2000).unref();
  });
}

const pools: PassivePortPool[] = [];
const held: PassiveListener[] = [];
after(() => {
  for (const listener of held) listener.server.close();
  for (const pool of pools) pool.close();
});

function newPool(range: PortRange): PassivePortPool {
  const pool = new PassivePortPool(range);
  pools.push(pool);
  return pool;
}

async function take(pool: PassivePortPool, host = '127.0.0.1'): Promise<PassiveListener> {
  const listener = await pool.acquire(host);
  held.push(listener);
  return listener;
}

describe('PassivePortPool', () => {
  it('a recycled listener serves the next acquire and drops connections while idle; a discarded one is closed', async () => {
    const pool = newPool(await freeRange(8));
    const first = await take(pool);
    pool.recycle(first);
    assert.equal(await probe(first.port), 'closed'); // idle: accepted and dropped, never kept for anyone
    const again = await take(pool);
    assert.equal(again, first);
    pool.discard(again);
    assert.equal(await probe(first.port), 'refused');
  });

  it('keeps no idle listener when the range is small (fewer than 4 ports)', async () => {
    const pool = newPool(await freeRange(3));
    const listener = await take(pool);
    pool.recycle(listener);
    assert.equal(await probe(listener.port), 'refused');
  });

  it('idle listeners of another local address give way when the range runs dry', async () => {
    const range = await freeRange(4);
    const pool = newPool(range);
    const other = await take(pool, '127.0.0.2');
    pool.recycle(other); // idle, holding one of the 4 ports
    const ports = new Set<number>();
    for (let i = 0; i < 4; i++) ports.add((await take(pool, '127.0.0.1')).port);
    assert.equal(ports.size, 4, 'all four ports of the range served 127.0.0.1');
    await assert.rejects(take(pool, '127.0.0.1'), /no free port/);
    assert.equal(await probe(other.port, '127.0.0.2'), 'refused');
  });

  it('close() closes idle listeners, and listeners recycled afterwards', async () => {
    const pool = newPool(await freeRange(8));
    const idle = await take(pool);
    const busy = await take(pool);
    pool.recycle(idle);
    pool.close();
    pool.recycle(busy);
    assert.equal(await probe(idle.port), 'refused');
    assert.equal(await probe(busy.port), 'refused');
  });
});
