/**
 * Bandwidth limits: the token bucket (pure, exact), the rate authority
 * (leases first come first served, a dead owner forgotten), this process's
 * pools, and the throttled download pump over a real loopback socket.
 * Accuracy over 10 s with real clients is in test/integration/throttle.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { receiveFromSocket, sendToSocket } from '../../src/data/transfer.js';
import { RateService } from '../../src/limits/rates.js';
import { LocalRates, ratesFor } from '../../src/limits/throttle.js';
import { leaseBytes, TokenBucket } from '../../src/limits/token-bucket.js';
import { FileReadStream } from '../../src/storage/file-read-stream.js';

describe('TokenBucket', () => {
  it('starts full, refills at its rate and never holds more than its capacity', () => {
    const bucket = new TokenBucket(1000, 100, 0);
    assert.equal(bucket.take(500, 0), 100);
    assert.equal(bucket.take(500, 0), 0);
    assert.equal(bucket.available(50), 50);
    assert.equal(bucket.take(20, 50), 20);
    assert.equal(bucket.available(10_000), 100);
  });

  it('says how long until n tokens are there, counting at most its capacity', () => {
    const bucket = new TokenBucket(1000, 100, 0);
    bucket.take(100, 0);
    assert.equal(bucket.msUntil(100, 0), 100);
    assert.equal(bucket.msUntil(1_000_000, 0), 100);
    assert.equal(bucket.msUntil(30, 10), 20);
    assert.equal(bucket.msUntil(5, 10), 0);
  });

  it('counts what accrued at the old rate when the rate changes, and caps it at the new capacity', () => {
    const bucket = new TokenBucket(1000, 100, 0);
    bucket.take(100, 0);
    bucket.setRate(100, 10, 50); // 50 accrued at 1000/s, capped to 10
    assert.equal(bucket.available(50), 10);
    bucket.take(10, 50);
    assert.equal(bucket.available(100), 5);
  });

  it('adds nothing when the clock steps back', () => {
    const bucket = new TokenBucket(1000, 100, 1000);
    bucket.take(100, 1000);
    assert.equal(bucket.available(500), 0);
    assert.equal(bucket.available(1010), 10);
  });

  it('leases a tenth of a second of bytes, at least one', () => {
    assert.equal(leaseBytes(1000), 100);
    assert.equal(leaseBytes(200_000), 20_000);
    assert.equal(leaseBytes(1), 1);
  });
});

describe('RateService', () => {
  it('grants leases in the order they were asked for, at the rate', async () => {
    const rates = new RateService();
    const order: string[] = [];
    const started = performance.now();
    const leases = ['a', 'b', 'a', 'b', 'a'].map((owner, i) =>
      rates.lease('k', 10_000, owner).then((bytes) => {
        assert.equal(bytes, 1000);
        order.push(`${owner}${i}`);
      }),
    );
    await Promise.all(leases);
    const elapsed = performance.now() - started;
    assert.deepEqual(order, ['a0', 'b1', 'a2', 'b3', 'a4']);
    // A new bucket holds the first lease; the other four need 100 ms each.
    assert.ok(elapsed >= 390, `5 leases of 1000 B at 10,000 B/s took ${elapsed.toFixed(0)} ms`);
    rates.close();
  });

  it('keeps what accrued while a lease was late (a bucket of two leases)', async () => {
    let now = 0;
    const rates = new RateService(() => now);
    assert.equal(await rates.lease('k', 10_000, 'a'), 1000);
    now = 150; // the next request comes 50 ms late: 1,500 B have accrued
    assert.equal(await rates.lease('k', 10_000, 'a'), 1000); // at once, 500 B carried over
    let third = false;
    const pending = rates.lease('k', 10_000, 'a').then(() => (third = true));
    await sleep(120);
    assert.equal(third, false, 'granted before its bytes accrued');
    now = 200; // 500 B more: due at 200, where a bucket of one lease would make it 250
    await pending;
    rates.close();
  });

  it("forgets a dead owner's waiting leases, and the others go on", async () => {
    const rates = new RateService();
    await rates.lease('k', 10_000, 'a'); // empties the bucket
    let deadGranted = false;
    void rates.lease('k', 10_000, 'dead').then(() => (deadGranted = true));
    const next = rates.lease('k', 10_000, 'b');
    rates.forgetOwner('dead');
    const started = performance.now();
    assert.equal(await next, 1000);
    // b did not wait behind the dead owner's lease (that would be 200 ms).
    assert.ok(performance.now() - started < 190);
    await sleep(150);
    assert.equal(deadGranted, false);
    rates.close();
  });

  it('drops a rate once its bucket is full again and nobody waits', async () => {
    const rates = new RateService();
    await rates.lease('k', 10_000, 'a');
    assert.equal(rates.size, 1);
    for (let i = 0; i < 50 && rates.size > 0; i++) await sleep(20);
    assert.equal(rates.size, 0);
  });

  it('refuses a rate that is not positive', async () => {
    await assert.rejects(new RateService().lease('k', 0, 'a'), RangeError);
  });
});

describe('LocalRates', () => {
  it('inserts nothing when no rate applies', () => {
    const local = new LocalRates(new RateService(), 'me');
    assert.equal(local.throttle(ratesFor('download', 0, 'alice', 0)), null);
  });

  it('names the server rate and the user rate per direction, user names quoted', () => {
    assert.deepEqual(ratesFor('upload', 5, 'a:b', 7), [
      { key: 'server:upload', bytesPerSecond: 5 },
      { key: 'user:"a:b":upload', bytesPerSecond: 7 },
    ]);
  });

  it('shares one pool per key between transfers, and the tighter pool decides', async () => {
    const authority = new RateService();
    const local = new LocalRates(authority, 'me');
    const controller = new AbortController();
    const a = local.throttle([{ key: 'u', bytesPerSecond: 100_000 }, { key: 's', bytesPerSecond: 10_000 }])!;
    const b = local.throttle([{ key: 'u', bytesPerSecond: 100_000 }])!;
    assert.equal(local.size, 2);
    assert.equal(a.take(1), 0); // nothing leased yet
    await a.wait(controller.signal);
    assert.equal(a.take(1_000_000), 1000); // s leased 1,000, u 10,000
    assert.equal(b.take(1_000_000), 9000); // what a left in u
    a.release();
    b.release();
    b.release(); // idempotent
    for (let i = 0; i < 100 && local.size > 0; i++) await sleep(20);
    assert.equal(local.size, 0);
    authority.close();
  });

  it('stops waiting at once when the transfer is aborted', async () => {
    const authority = new RateService();
    const local = new LocalRates(authority, 'me');
    const throttle = local.throttle([{ key: 'slow', bytesPerSecond: 1 }])!; // one byte per second
    const controller = new AbortController();
    await throttle.wait(controller.signal);
    assert.equal(throttle.take(10), 1);
    const waiting = throttle.wait(controller.signal);
    const started = performance.now();
    setTimeout(() => controller.abort(new Error('ABOR')), 50);
    await assert.rejects(waiting, /ABOR/);
    assert.ok(performance.now() - started < 800, 'the wait for the next byte (1 s) was not cut short');
    throttle.release();
    authority.close();
  });
});

describe('throttled data path', () => {
  async function pair(): Promise<{ send: net.Socket; chunks: Array<{ at: number; bytes: number }>; received: Promise<Buffer>; close: () => void }> {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const send = await accepted;
    const chunks: Array<{ at: number; bytes: number }> = [];
    const received = new Promise<Buffer>((resolve) => {
      const data: Buffer[] = [];
      client.on('data', (c: Buffer) => (data.push(c), chunks.push({ at: performance.now(), bytes: c.length })));
      client.on('end', () => resolve(Buffer.concat(data)));
      client.on('error', () => resolve(Buffer.concat(data)));
    });
    return { send, chunks, received, close: () => (send.destroy(), client.destroy(), server.close()) };
  }

  it('sends a local file at the rate, its one chunk in pieces of at most a lease', async (t) => {
    const dir = await fsp.mkdtemp(join(tmpdir(), 'ferry-throttle-'));
    t.after(() => fsp.rm(dir, { recursive: true, force: true }));
    const data = randomBytes(30_000);
    await fsp.writeFile(join(dir, 'f'), data);
    const handle = await fsp.open(join(dir, 'f'));
    const source = new FileReadStream(handle, 0, data.length);
    const authority = new RateService();
    const throttle = new LocalRates(authority, 'me').throttle([{ key: 'k', bytesPerSecond: 20_000 }])!;
    const { send, chunks, received, close } = await pair();
    t.after(() => (close(), throttle.release(), authority.close()));
    const started = performance.now();
    await sendToSocket(source, send, { ascii: false, signal: new AbortController().signal, throttle });
    assert.deepEqual(await received, data);
    const elapsed = performance.now() - started;
    // 2,000 B at once (the first lease), then 28,000 B at 20,000 B/s; without pacing the chunk would go whole.
    assert.ok(elapsed >= 1350, `30,000 B at 20,000 B/s took ${elapsed.toFixed(0)} ms`);
    const early = chunks.filter((c) => c.at - started < 300).reduce((sum, c) => sum + c.bytes, 0);
    assert.ok(early <= 2000 + 300 * 20 + 2000, `${early} bytes in the first 300 ms`);
  });

  it('paces a stream pipeline (ASCII, listings, other storages) the same way', async (t) => {
    const authority = new RateService();
    const throttle = new LocalRates(authority, 'me').throttle([{ key: 'k', bytesPerSecond: 20_000 }])!;
    const { send, received, close } = await pair();
    t.after(() => (close(), throttle.release(), authority.close()));
    const lines = Buffer.from('line\n'.repeat(4000)); // 20,000 B, 24,000 B on the wire in ASCII
    const started = performance.now();
    await sendToSocket(Readable.from([lines]), send, { ascii: true, signal: new AbortController().signal, throttle });
    assert.equal((await received).length, 24_000);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 1000, `24,000 B at 20,000 B/s took ${elapsed.toFixed(0)} ms`);
  });

  it('reads an upload no faster than the rate, counting the bytes on the wire (ASCII)', async (t) => {
    const authority = new RateService();
    const throttle = new LocalRates(authority, 'me').throttle([{ key: 'k', bytesPerSecond: 20_000 }])!;
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const socket = await accepted;
    t.after(() => (client.destroy(), socket.destroy(), server.close(), throttle.release(), authority.close()));
    const received: Buffer[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (received.push(chunk), done()) });
    const started = performance.now();
    client.end(Buffer.from('line\r\n'.repeat(4000))); // 24,000 B on the wire, 20,000 B stored
    await receiveFromSocket(socket, sink, { ascii: true, signal: new AbortController().signal, throttle, beforeCommit: async () => undefined });
    assert.equal(Buffer.concat(received).toString(), 'line\n'.repeat(4000));
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 1000, `24,000 B at 20,000 B/s took ${elapsed.toFixed(0)} ms`);
  });
});
