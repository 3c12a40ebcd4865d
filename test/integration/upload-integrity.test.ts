/**
 * When an upload counts (docs/architecture.md, "When an upload counts"),
 * checked with real processes: clients killed with SIGKILL mid-overwrite keep
 * the old file, fire-and-forget uploaders that send QUIT without reading 226
 * keep the new one, and the events always agree with what is on disk.
 * Each case runs several times: the outcome must not depend on timing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, type TestContext } from 'node:test';
import { RawClient } from '../helpers/ftp-raw.js';
import { PASSWORD, startServer, USER, type TestServer } from '../helpers/server.js';

const OLD = 'old content, 27 bytes long.';
const RUNS = 6;

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** True when `command` is installed; skips the test when it is not, except under CI, where .ci/run installs it and its absence fails. */
function needs(t: TestContext, command: string): boolean {
  if (has(command)) return true;
  assert.ok(!process.env.CI, `${command} is not installed, and .ci/run should have installed it`);
  t.skip(`${command} is not installed (.ci/run installs it)`);
  return false;
}

/** Every file-received / upload-aborted event, in order. */
function recordUploads(server: TestServer['server']): string[] {
  const events: string[] = [];
  server.on('file-received', (e) => events.push(`received ${e.path}`));
  server.on('upload-aborted', (e) => events.push(`aborted ${e.path}`));
  return events;
}

/** Wait (bounded) until `events` has `count` entries: the session settles after the client is gone. */
async function settled(events: string[], count: number, what: string): Promise<void> {
  for (let i = 0; i < 200 && events.length < count; i++) await sleep(25);
  assert.equal(events.length, count, `${what}: events ${JSON.stringify(events)}`);
}

async function noTempFiles(root: string): Promise<void> {
  const names = await readdir(root);
  assert.deepEqual(names.filter((n) => n.startsWith('.ferry-upload-')), [], 'temp files left behind');
}

/** Feed a client that uploads from `feed` (its stdin) if given, then kill it with SIGKILL mid-upload. */
async function killMidUpload(child: ChildProcess, root: string, feed: Writable | null = child.stdin): Promise<void> {
  feed?.on('error', () => undefined);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const feeder = feed ? setInterval(() => feed.write(chunk), 2) : undefined;
  try {
    // Until the upload is under way: the temp file exists and has grown.
    for (let i = 0; i < 200; i++) {
      const temps = (await readdir(root)).filter((n) => n.startsWith('.ferry-upload-'));
      if (temps.length > 0) break;
      await sleep(10);
    }
    await sleep(150);
  } finally {
    clearInterval(feeder);
  }
  child.kill('SIGKILL');
  await once(child, 'exit');
  feed?.destroy();
}

describe('a client killed mid-overwrite leaves the old file in place', () => {
  it('curl killed with SIGKILL: old content kept and upload-aborted emitted, every run', async (t: TestContext) => {
    if (!needs(t, 'curl')) return;
    const { server, port, root } = await startServer(t);
    const events = recordUploads(server);
    for (let run = 0; run < RUNS; run++) {
      await writeFile(path.join(root, 'f.txt'), OLD);
      const child = spawn('curl', ['-s', '-T', '-', `ftp://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/f.txt`], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      await killMidUpload(child, root);
      await settled(events, run + 1, `run ${run}`);
      assert.equal(events[run], 'aborted /f.txt', `run ${run}`);
      assert.equal(await readFile(path.join(root, 'f.txt'), 'utf8'), OLD, `run ${run}: old file replaced`);
      await noTempFiles(root);
    }
  });

  it('lftp killed with SIGKILL: old content kept and upload-aborted emitted, every run', async (t: TestContext) => {
    if (!needs(t, 'lftp')) return;
    const { server, port, root } = await startServer(t);
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'ferry-lftp-'));
    t.after(() => rm(scratch, { recursive: true, force: true }));
    const source = path.join(scratch, 'source.bin');
    await writeFile(source, Buffer.alloc(32 * 1024 * 1024, 0x61));
    const events = recordUploads(server);
    for (let run = 0; run < RUNS; run++) {
      await writeFile(path.join(root, 'f.txt'), OLD);
      // A file read at a limited rate, so that the kill lands mid-upload. (Not a
      // FIFO: opening one for writing blocks a thread-pool thread until lftp
      // opens it, forever if lftp never gets that far.)
      const script = `set cmd:interactive false; set net:max-retries 1; set net:limit-rate 2M; set xfer:clobber on; put ${source} -o f.txt; quit`;
      const child = spawn('lftp', ['-u', `${USER},${PASSWORD}`, '-p', String(port), '-e', script, '127.0.0.1'], {
        stdio: ['ignore', 'ignore', 'ignore'],
        env: { ...process.env, HOME: scratch },
      });
      await killMidUpload(child, root, null);
      await settled(events, run + 1, `run ${run}`);
      assert.equal(events[run], 'aborted /f.txt', `run ${run}`);
      assert.equal(await readFile(path.join(root, 'f.txt'), 'utf8'), OLD, `run ${run}: old file replaced`);
    }
  });
});

/** Log in, start STOR on a passive connection, and return both sockets once 150 has arrived. */
async function startStor(port: number, name: string): Promise<{ control: RawClient; data: net.Socket }> {
  const control = await RawClient.login(port, USER, PASSWORD);
  await control.command('TYPE I', 200);
  const data = await control.passive();
  control.send(`STOR ${name}`);
  await control.expect(150);
  return { control, data };
}

function endSocket(socket: net.Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => socket.end(bytes, () => resolve()));
}

describe('a fire-and-forget upload counts', () => {
  const body = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
  const digest = createHash('sha256').update(body).digest('hex');

  it('data closed, then QUIT and close without reading 226: the file is kept and file-received emitted, every run', async (t) => {
    const { server, port, root } = await startServer(t);
    const events = recordUploads(server);
    for (let run = 0; run < RUNS; run++) {
      await writeFile(path.join(root, 'g.bin'), OLD);
      const { control, data } = await startStor(port, 'g.bin');
      // Close the data connection while its last megabytes are still in flight, then leave.
      data.end(body);
      control.socket.end('QUIT\r\n');
      await settled(events, run + 1, `run ${run}`);
      assert.equal(events[run], 'received /g.bin', `run ${run}`);
      const stored = await readFile(path.join(root, 'g.bin'));
      assert.equal(createHash('sha256').update(stored).digest('hex'), digest, `run ${run}: stored bytes differ`);
      await noTempFiles(root);
    }
  });

  it('data closed, control closed later without QUIT: kept once the control connection outlived the data', async (t) => {
    const { server, port, root } = await startServer(t);
    const events = recordUploads(server);
    for (let run = 0; run < 3; run++) {
      const { control, data } = await startStor(port, 'h.bin');
      await endSocket(data, body);
      await once(data, 'close');
      await sleep(300);
      control.close();
      await settled(events, run + 1, `run ${run}`);
      assert.equal(events[run], 'received /h.bin', `run ${run}`);
      assert.equal((await readFile(path.join(root, 'h.bin'))).length, body.length);
    }
  });

  it('both connections closed at once without QUIT (as by a crash): not committed, upload-aborted emitted', async (t) => {
    const { server, port, root } = await startServer(t);
    const events = recordUploads(server);
    for (let run = 0; run < RUNS; run++) {
      await writeFile(path.join(root, 'k.txt'), OLD);
      const { control, data } = await startStor(port, 'k.txt');
      await new Promise<void>((resolve) => data.write('partial', () => resolve()));
      await sleep(50); // the server has read it
      data.end();
      control.socket.end();
      await settled(events, run + 1, `run ${run}`);
      assert.equal(events[run], 'aborted /k.txt', `run ${run}`);
      assert.equal(await readFile(path.join(root, 'k.txt'), 'utf8'), OLD);
    }
  });

  it('uploadSettleMs: 0 commits at the data connection\'s end, even when the control connection closes with it', async (t) => {
    const { server, port, root } = await startServer(t, { uploadSettleMs: 0 });
    const events = recordUploads(server);
    await writeFile(path.join(root, 'k.txt'), OLD);
    const { control, data } = await startStor(port, 'k.txt');
    await new Promise<void>((resolve) => data.write('partial', () => resolve()));
    await sleep(50);
    data.end();
    await sleep(50); // the commit has begun: nothing waits for the control connection
    control.socket.end();
    await settled(events, 1, 'settle 0');
    assert.equal(events[0], 'received /k.txt');
    assert.equal(await readFile(path.join(root, 'k.txt'), 'utf8'), 'partial');
  });

  it('busybox ftpput uploads a file and file-received agrees with the disk', async (t) => {
    if (!needs(t, 'busybox')) return;
    const { server, port, root } = await startServer(t);
    const events = recordUploads(server);
    const local = path.join(root, 'local-source.bin');
    await writeFile(local, body.subarray(0, 300_000));
    // Not spawnSync: the server runs in this process and must keep serving meanwhile.
    const child = spawn('busybox', ['ftpput', '-u', USER, '-p', PASSWORD, '-P', String(port), '127.0.0.1', 'put.bin', local], {
      stdio: 'ignore',
      timeout: 20_000,
    });
    const [status] = await once(child, 'exit');
    assert.equal(status, 0);
    await settled(events, 1, 'ftpput');
    assert.equal(events[0], 'received /put.bin');
    assert.deepEqual(await readFile(path.join(root, 'put.bin')), body.subarray(0, 300_000));
  });
});

describe('a session notices its client at once', () => {
  it('PASV, STOU and NOOPs in one segment, ABOR, close: the session ends within a second', async (t) => {
    const { server, port } = await startServer(t);
    let disconnects = 0;
    server.on('disconnect', () => disconnects++);
    for (const last of ['ABOR', 'QUIT', 'REIN', '']) {
      const before = disconnects;
      const client = await RawClient.login(port, USER, PASSWORD);
      client.write('PASV\r\nSTOU\r\n' + 'NOOP\r\n'.repeat(20));
      await sleep(50);
      if (last) client.write(`${last}\r\n`);
      await sleep(20);
      client.close();
      const started = Date.now();
      while (disconnects === before && Date.now() - started < 5000) await sleep(10);
      assert.ok(disconnects > before, `after ${last || 'a bare close'}: session still open after 5 s`);
      assert.ok(Date.now() - started < 1000, `after ${last || 'a bare close'}: took ${Date.now() - started} ms`);
    }
  });

  it('ABOR in the same segment as PASV and STOR is answered at once: 426 for STOR, then 226', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    client.write('PASV\r\nSTOR x.bin\r\nABOR\r\nNOOP\r\n');
    await client.expect(227, 2000);
    assert.equal((await client.read(2000)).code, 426);
    await client.expect(226, 2000);
    await client.expect(200, 2000);
  });

  it('QUIT behind a transfer waiting for its data connection closes the session at once', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    await client.command('TYPE I', 200);
    client.write('EPSV\r\nSTOR y.bin\r\nQUIT\r\n');
    await client.expect(229, 2000);
    // 150 comes first only if the storage had opened before QUIT arrived.
    let reply = await client.read(2000);
    if (reply.code === 150) reply = await client.read(2000);
    assert.equal(reply.code, 426);
    await client.expect(221, 2000);
    await client.closed(2000);
  });

  it('a client that floods STAT during a transfer and never reads is cut off, and others are served', async (t) => {
    const { port, root } = await startServer(t);
    // Larger than the kernel's socket buffers: the download stays in progress.
    await writeFile(path.join(root, 'big.bin'), Buffer.alloc(64 * 1024 * 1024));
    const flooder = await RawClient.login(port, USER, PASSWORD);
    t.after(() => flooder.close());
    await flooder.command('TYPE I', 200);
    const data = await flooder.passive();
    t.after(() => data.destroy());
    data.pause(); // the download never moves
    flooder.send('RETR big.bin');
    await flooder.expect(150);
    flooder.socket.pause(); // and the replies are never read
    const flood = Buffer.from('STAT\r\n'.repeat(10_000));
    let closed = false;
    flooder.socket.once('close', () => (closed = true));
    // The server's 421 waits unread behind the replies; its reset ends the writes.
    for (const started = Date.now(); !closed && Date.now() - started < 10_000; await sleep(20)) {
      if (flooder.socket.writableLength < 1 << 20) flooder.socket.write(flood);
    }
    assert.ok(closed, 'the flooding client was never cut off');
    const other = await RawClient.login(port, USER, PASSWORD);
    await other.command('NOOP', 200);
    other.close();
  });
});
