/**
 * Faults on the disk side: a full disk (a 2 MiB tmpfs), a read-only folder
 * (a tmpfs remounted read-only: the tests run as root, where mode bits stop
 * no write), and a file deleted or truncated while it is being downloaded.
 * The small filesystems are mounted inside the served root, so the healthy
 * client beside each fault writes to an ordinary disk.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { RawClient } from '../helpers/ftp-raw.js';
import { PASSWORD, USER } from '../helpers/server.js';
import { dataConnection, eventFor, faultServer, healthyClient, logLineFor, noSessionsLeft, sha256, tempFiles, type FaultServer } from './fault-helpers.js';

const OLD = 'the old content, which must survive';

function run(...args: string[]): boolean {
  return spawnSync(args[0]!, args.slice(1), { stdio: 'ignore' }).status === 0;
}

/** Why mounting cannot be tested here, or null when it can (root, and mounts allowed). */
const cannotMount = ((): string | null => {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux to mount a tmpfs';
  const probe = spawnSync('sh', ['-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; s=$?; rmdir "$d"; exit $s']);
  return probe.status === 0 ? null : 'mounting a tmpfs is not permitted here';
})();

/** Mount a tmpfs of `size` at `dir` (inside the served root), unmounted at the test's end even on failure. */
async function tmpfs(t: TestContext, dir: string, size: string): Promise<void> {
  await mkdir(dir);
  assert.ok(run('mount', '-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir), `mount tmpfs at ${dir}`);
  // Each test unmounts in its `finally`, before the server's clean-up removes the root; this is the fallback.
  t.after(() => void run('umount', '-l', dir));
}

async function setUp(t: TestContext): Promise<{ srv: FaultServer; client: RawClient }> {
  const srv = await faultServer(t);
  const client = await RawClient.login(srv.port, USER, PASSWORD);
  t.after(() => client.close());
  await client.command('TYPE I', 200);
  return { srv, client };
}

describe('disk faults', { skip: cannotMount ?? false }, () => {
  it('disk full mid-upload: 452, a warning in the log, upload-aborted, the old file kept, no temp file', async (t) => {
    const { srv, client } = await setUp(t);
    const small = path.join(srv.root, 'small');
    await tmpfs(t, small, '2m');
    try {
      await writeFile(path.join(small, 'old.txt'), OLD);
      const healthy = healthyClient(srv.port);
      const data = await dataConnection(client);
      await client.command('STOR small/old.txt', 150);
      data.end(randomBytes(4 * 1024 * 1024));
      const reply = await client.read(10_000);
      assert.equal(reply.code, 452, reply.lines.join(' | '));
      assert.equal(reply.text, 'Insufficient storage space.');
      await eventFor(srv, 'upload-aborted', '/small/old.txt');
      logLineFor(srv, 'upload-aborted', '/small/old.txt');
      assert.ok(srv.lines.some((l) => l.level === 'warn' && l.code === 'FERRY_ERR_NO_SPACE'), 'the operator is told the disk is full');
      assert.equal(await readFile(path.join(small, 'old.txt'), 'utf8'), OLD);
      assert.deepEqual(await tempFiles(small), [], 'no temp file left');
      // The space came back: the next upload there works.
      const again = await dataConnection(client);
      await client.command('STOR small/old.txt', 150);
      again.end('fits');
      await client.expect(226);
      assert.equal(await readFile(path.join(small, 'old.txt'), 'utf8'), 'fits');
      await client.command('QUIT', 221);
      assert.ok((await healthy.stop()) >= 1);
      await noSessionsLeft(srv);
    } finally {
      run('umount', '-l', small);
    }
  });

  it('read-only folder: 550 for STOR, DELE and MKD, a warning in the log, nothing changed', async (t) => {
    const { srv, client } = await setUp(t);
    const ro = path.join(srv.root, 'ro');
    await tmpfs(t, ro, '1m');
    try {
      await writeFile(path.join(ro, 'old.txt'), OLD);
      assert.ok(run('mount', '-o', 'remount,ro', ro), 'remount read-only');
      const healthy = healthyClient(srv.port);
      await client.command('EPSV', 229);
      const stor = await client.command('STOR ro/old.txt', 550);
      assert.equal(stor.text, 'Permission denied.');
      await client.command('EPSV', 229);
      await client.command('STOR ro/new.txt', 550);
      await client.command('DELE ro/old.txt', 550);
      await client.command('MKD ro/sub', 550);
      assert.ok(srv.lines.some((l) => l.level === 'warn' && l.code === 'FERRY_ERR_ACCESS_DENIED'), 'the operator is told');
      assert.equal(await readFile(path.join(ro, 'old.txt'), 'utf8'), OLD);
      await client.command('QUIT', 221);
      assert.ok((await healthy.stop()) >= 1);
      await noSessionsLeft(srv);
      assert.deepEqual(await tempFiles(srv.root), []);
    } finally {
      run('umount', '-l', ro);
    }
  });
});

describe('the file changes during RETR', () => {
  const BIG_BYTES = 32 * 1024 * 1024;

  /** Start downloading big.bin, read one chunk, pause the reader; the server is mid-file. */
  async function midDownload(t: TestContext) {
    const { srv, client } = await setUp(t);
    const content = randomBytes(BIG_BYTES);
    await writeFile(path.join(srv.root, 'big.bin'), content);
    const healthy = healthyClient(srv.port);
    const data = await dataConnection(client);
    await client.command('RETR big.bin', 150);
    const chunks: Buffer[] = [];
    data.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(data, 'data');
    data.pause();
    const received = async () => {
      data.resume();
      await once(data, 'close');
      return Buffer.concat(chunks);
    };
    return { srv, client, content, healthy, received };
  }

  it('deleted: the open file is still read to its end, 226, the right SHA-256, file-sent', async (t) => {
    const { srv, client, content, healthy, received } = await midDownload(t);
    await unlink(path.join(srv.root, 'big.bin'));
    const body = await received();
    await client.expect(226);
    assert.equal(sha256(body), sha256(content));
    await eventFor(srv, 'file-sent', '/big.bin');
    logLineFor(srv, 'file-sent', '/big.bin');
    await client.command('QUIT', 221);
    assert.ok((await healthy.stop()) >= 1);
    await noSessionsLeft(srv);
  });

  it('truncated: 451 "File changed during transfer", download-aborted, never a 226 for a short file', async (t) => {
    const { srv, client, healthy, received } = await midDownload(t);
    await truncate(path.join(srv.root, 'big.bin'), 1024 * 1024);
    const body = await received();
    assert.ok(body.length < BIG_BYTES);
    const reply = await client.read(10_000);
    assert.equal(reply.code, 451, reply.lines.join(' | '));
    assert.equal(reply.text, 'File changed during transfer; try again.');
    await eventFor(srv, 'download-aborted', '/big.bin');
    logLineFor(srv, 'download-aborted', '/big.bin');
    await client.command('NOOP', 200);
    await client.command('QUIT', 221);
    assert.ok((await healthy.stop()) >= 1);
    await noSessionsLeft(srv);
  });
});
