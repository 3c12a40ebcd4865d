/**
 * The download path for local files: FileReadStream (positional reads into
 * caller-owned buffers) and the two-buffer pump of data/transfer.ts, over a
 * real loopback socket.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PUMP_CHUNK_BYTES, sendToSocket } from '../../src/data/transfer.js';
import { FileReadStream } from '../../src/storage/file-read-stream.js';
import { isChunkSource } from '../../src/storage/types.js';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'ferry-pump-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function fileWith(name: string, data: Buffer): Promise<string> {
  const path = join(dir, name);
  await fsp.writeFile(path, data);
  return path;
}

async function openStream(path: string, start = 0): Promise<FileReadStream> {
  const handle = await fsp.open(path, 'r');
  return new FileReadStream(handle, start, (await handle.stat()).size);
}

/** A connected loopback pair: `send` is the server's end, `received` collects what the client gets until EOF. */
async function socketPair(): Promise<{ send: net.Socket; received: Promise<Buffer>; client: net.Socket; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const send = await accepted;
  const received = new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    client.on('end', () => resolve(Buffer.concat(chunks)));
    client.on('error', () => resolve(Buffer.concat(chunks)));
  });
  return { send, received, client, close: () => (send.destroy(), client.destroy(), server.close()) };
}

describe('FileReadStream', () => {
  it('is a ChunkSource: readInto fills caller buffers from the start offset to the size seen at open', async () => {
    const data = randomBytes(10_000);
    const stream = await openStream(await fileWith('a.bin', data), 1000);
    assert.ok(isChunkSource(stream));
    assert.equal(stream.remaining, 9000);
    const buffer = Buffer.alloc(4096);
    const parts: Buffer[] = [];
    for (let n; (n = await stream.readInto(buffer)) > 0; ) parts.push(Buffer.from(buffer.subarray(0, n)));
    assert.deepEqual(parts.map((p) => p.length), [4096, 4096, 808]);
    assert.ok(Buffer.concat(parts).equals(data.subarray(1000)));
    assert.equal(stream.remaining, 0);
    stream.destroy();
  });

  it('a file truncated after open fails the read (FILE_CHANGED) instead of ending early as if complete', async () => {
    const path = await fileWith('shrinks.bin', randomBytes(8192));
    const stream = await openStream(path);
    await fsp.truncate(path, 5000);
    const buffer = Buffer.alloc(4096);
    assert.equal(await stream.readInto(buffer), 4096);
    assert.equal(await stream.readInto(buffer), 904);
    await assert.rejects(stream.readInto(buffer), { code: 'FERRY_ERR_FILE_CHANGED' });
    stream.destroy();
  });

  it('also works as a plain Readable, and closes its file at the end', async () => {
    const data = randomBytes(600 * 1024); // more than one 256 KiB stream chunk
    const stream = await openStream(await fileWith('b.bin', data));
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(data));
    await new Promise((r) => setImmediate(r));
    assert.ok(stream.destroyed);
  });
});

describe('sendToSocket from a ChunkSource (the two-buffer pump)', () => {
  for (const [label, size, start] of [
    ['empty', 0, 0],
    ['one byte', 1, 0],
    ['exactly one chunk', PUMP_CHUNK_BYTES, 0],
    ['2.5 chunks', 2.5 * PUMP_CHUNK_BYTES, 0],
    ['2.5 chunks from an odd offset', 2.5 * PUMP_CHUNK_BYTES, 12_345],
  ] as const) {
    it(`sends ${label} byte-exact, ends the socket and closes the file`, async (t) => {
      const data = randomBytes(size);
      const source = await openStream(await fileWith(`p-${size}-${start}.bin`, data), start);
      const pair = await socketPair();
      t.after(pair.close);
      await sendToSocket(source, pair.send, { ascii: false, signal: new AbortController().signal });
      assert.equal(sha256(await pair.received), sha256(data.subarray(start)));
      assert.ok(source.destroyed);
    });
  }

  it('an abort mid-transfer rejects, destroys the socket and closes the file', async (t) => {
    const source = await openStream(await fileWith('abort.bin', randomBytes(64 * MiB)));
    const pair = await socketPair();
    t.after(pair.close);
    pair.client.pause(); // the receiver stops reading, so the transfer cannot finish by itself
    const controller = new AbortController();
    const sending = sendToSocket(source, pair.send, { ascii: false, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('ABOR')), 50);
    await assert.rejects(sending);
    assert.ok(pair.send.destroyed);
    assert.ok(source.destroyed);
  });

  it('a receiver that disconnects mid-transfer makes it reject, not hang', async (t) => {
    const source = await openStream(await fileWith('gone.bin', randomBytes(64 * MiB)));
    const pair = await socketPair();
    t.after(pair.close);
    pair.client.once('data', () => pair.client.destroy());
    await assert.rejects(sendToSocket(source, pair.send, { ascii: false, signal: new AbortController().signal }));
    assert.ok(source.destroyed);
  });
});
