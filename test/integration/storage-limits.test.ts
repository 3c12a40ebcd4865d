/**
 * Maximum file size and quotas over FTP (issue 12): real servers on
 * loopback, real clients (raw sockets, basic-ftp, curl), local disk and S3
 * (Ceph). The counters are checked against the files themselves
 * (storageUsage) after every step. Cluster mode: test/integration/cluster-limits.test.ts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import { Client } from 'basic-ftp';
import { LocalStorage, UserListAuthenticator, createServer, type AccountLimits, type FtpServer, type Storage } from '../../src/index.js';
import { storageUsage } from '../../src/limits/usage.js';
import { S3Storage } from '../../src/storage/s3.js';
import { cephClient, cephSkip, createBucket, pendingUploads, sharedCeph, stopSharedCeph } from '../helpers/ceph.js';
import { RawClient, sendBytes as send, uploadBytes as upload } from '../helpers/ftp-raw.js';

const USER = 'alice';
const PASSWORD = 'quota pass';
const KIB = 1024;
const MIB = 1024 * KIB;

interface Fixture {
  server: FtpServer;
  port: number;
  storage: Storage;
  root: string;
  events: Array<{ name: string; path?: string; reason?: string }>;
  /** The ledger's numbers for alice, once they equal the files' own (settling follows the upload's end), at most 2 s later. */
  usage(): Promise<{ bytes: number; files: number } | null>;
}

async function setup(t: TestContext, options: { limits?: AccountLimits; maxFileSizeBytes?: number; perUserLimits?: AccountLimits; storage?: Storage } = {}): Promise<Fixture> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-limits-'));
  const storage = options.storage ?? new LocalStorage(root);
  const authenticator = new UserListAuthenticator([
    { username: USER, password: PASSWORD, storage: () => storage, permissions: 'elradfmwMT', ...(options.limits && { limits: options.limits }) },
  ]);
  const server = createServer({
    authenticator,
    host: '127.0.0.1',
    port: 0,
    loginFailureDelayMs: 10,
    ...(options.maxFileSizeBytes !== undefined && { maxFileSizeBytes: options.maxFileSizeBytes }),
    ...(options.perUserLimits && { perUserLimits: options.perUserLimits }),
  });
  const events: Fixture['events'] = [];
  server.on('file-received', (e) => events.push({ name: 'file-received', path: e.path }));
  server.on('upload-aborted', (e) => events.push({ name: 'upload-aborted', path: e.path, reason: e.reason }));
  t.after(async () => {
    await server.close(0);
    await rm(root, { recursive: true, force: true });
  });
  const { port } = await server.listen();
  return {
    server,
    port,
    storage,
    root,
    events,
    async usage() {
      let now = await server.usage(USER);
      for (let i = 0; i < 200; i++) {
        const real = await storageUsage(storage);
        now = await server.usage(USER);
        if (now && now.reservedBytes === 0 && now.reservedFiles === 0 && now.bytes === real.bytes && now.files === real.files) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      return now && { bytes: now.bytes, files: now.files };
    },
  };
}

async function login(t: TestContext, port: number): Promise<RawClient> {
  const client = await RawClient.login(port, USER, PASSWORD);
  t.after(() => client.close());
  await client.command('TYPE I', 200);
  return client;
}

async function fileSize(root: string, name: string): Promise<number | null> {
  return stat(path.join(root, name)).then(
    (s) => s.size,
    () => null,
  );
}

describe('maximum file size over FTP', () => {
  test('an upload crossing limits.maxFileSizeBytes gets 552 while still sending, the old file stays and upload-aborted fires', async (t) => {
    const fx = await setup(t, { maxFileSizeBytes: 1 * MIB });
    await writeFile(path.join(fx.root, 'keep.bin'), 'old content');
    const client = await login(t, fx.port);
    const data = await client.passive();
    client.send('STOR keep.bin');
    await client.expect(150);
    // Far more than the cap: the reply must come when 1 MiB is crossed, not at the end.
    const sending = send(data, 256 * MIB);
    const reply = await client.read(10_000);
    assert.equal(reply.code, 552);
    assert.match(reply.text, /File too large/);
    data.destroy();
    await sending;
    assert.equal(await readFile(path.join(fx.root, 'keep.bin'), 'utf8'), 'old content');
    assert.equal(fx.events.length, 1);
    assert.deepEqual({ ...fx.events[0], reason: undefined }, { name: 'upload-aborted', path: '/keep.bin', reason: undefined });
    // The event (and the log line made from it) says why: the operator can tell a size refusal from a client that left.
    assert.match(fx.events[0]!.reason!, /^FERRY_ERR_FILE_TOO_LARGE: /);
    // Exactly the cap is allowed; the session goes on.
    assert.equal(await upload(client, 'STOR', 'exact.bin', MIB), 226);
    assert.equal(await fileSize(fx.root, 'exact.bin'), MIB);
  });

  test('the user\'s own cap wins when smaller, and APPE and REST+STOR count the final size', async (t) => {
    const fx = await setup(t, { maxFileSizeBytes: 10 * MIB, limits: { maxFileSizeBytes: 256 * KIB } });
    const client = await login(t, fx.port);
    assert.equal(await upload(client, 'STOR', 'f.bin', 256 * KIB + 1), 552);
    assert.equal(await fileSize(fx.root, 'f.bin'), null);
    assert.equal(await upload(client, 'STOR', 'f.bin', 200 * KIB), 226);
    assert.equal(await upload(client, 'APPE', 'f.bin', 56 * KIB + 1), 552);
    assert.equal(await fileSize(fx.root, 'f.bin'), 200 * KIB);
    assert.equal(await upload(client, 'APPE', 'f.bin', 56 * KIB), 226);
    await client.command('REST 131072', 350);
    assert.equal(await upload(client, 'STOR', 'f.bin', 128 * KIB + 1), 552);
    await client.command('REST 131072', 350);
    assert.equal(await upload(client, 'STOR', 'f.bin', 128 * KIB), 226);
    assert.equal(await fileSize(fx.root, 'f.bin'), 256 * KIB);
  });

  test('basic-ftp, curl and Python\'s ftplib report the 552 (not a reset), though they read replies only after sending', async (t) => {
    const fx = await setup(t, { perUserLimits: { maxFileSizeBytes: 100 * KIB } });
    const ftp = new Client(10_000);
    t.after(() => ftp.close());
    await ftp.access({ host: '127.0.0.1', port: fx.port, user: USER, password: PASSWORD });
    await assert.rejects(ftp.uploadFrom(Readable.from([randomBytes(4 * MIB)]), 'big.bin'), (err: { code?: number }) => err.code === 552);
    await ftp.uploadFrom(Readable.from([randomBytes(100 * KIB)]), 'ok.bin');
    assert.equal(await fileSize(fx.root, 'ok.bin'), 100 * KIB);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-limits-curl-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'up.bin'), randomBytes(2 * MIB));
    const { code, stderr } = await curl(['-u', `${USER}:${PASSWORD}`, '-T', path.join(dir, 'up.bin'), `ftp://127.0.0.1:${fx.port}/up.bin`]);
    // curl's exit code 70 is its name for FTP's 552: it read the reply, not a reset of the data connection.
    assert.equal(code, 70, stderr);
    assert.match(stderr, /Exceeded storage allocation/);
    assert.equal(await fileSize(fx.root, 'up.bin'), null);
    // TYPE A and a throttled upload too: the converter and the pacing stage let go of the socket, which is drained, not reset.
    // Larger than loopback's socket buffers, so curl is still sending when the server stops reading.
    await writeFile(path.join(dir, 'up2.bin'), randomBytes(32 * MIB));
    const paced = await setup(t, { perUserLimits: { maxFileSizeBytes: 100 * KIB, uploadBytesPerSecond: 2 * MIB } });
    for (const [port, extra] of [[fx.port, ['--use-ascii']], [paced.port, []]] as const) {
      const more = await curl(['-u', `${USER}:${PASSWORD}`, ...extra, '-T', path.join(dir, 'up2.bin'), `ftp://127.0.0.1:${port}/up2.bin`]);
      assert.equal(more.code, 70, `${port === paced.port ? 'throttled' : 'TYPE A'}: ${more.stderr}`);
    }
    const python = await run('python3', ['-c', `import ftplib\nf = ftplib.FTP()\nf.connect('127.0.0.1', ${fx.port})\nf.login('${USER}', '${PASSWORD}')\ntry:\n  f.storbinary('STOR py.bin', open('${path.join(dir, 'up.bin')}', 'rb'))\nexcept ftplib.error_perm as e:\n  print(e)`]);
    assert.match(python.stdout, /^552 File too large/);
  });
});

describe('quotas over FTP', () => {
  test('an upload crossing quotaBytes gets 552 mid-upload; the old file stays and the count equals the files after every command', async (t) => {
    const fx = await setup(t, { perUserLimits: { quotaBytes: 2 * MIB } });
    await writeFile(path.join(fx.root, 'before.bin'), Buffer.alloc(512 * KIB));
    const client = await login(t, fx.port);
    assert.equal(await upload(client, 'STOR', 'a.bin', 1 * MIB), 226);
    assert.deepEqual(await fx.usage(), { bytes: 1536 * KIB, files: 2 });
    // 512 KiB left: replacing a.bin may bring it to 1.5 MiB, a new file gets 512 KiB.
    assert.equal(await upload(client, 'STOR', 'a.bin', 64 * MIB), 552);
    assert.equal(await fileSize(fx.root, 'a.bin'), MIB);
    assert.equal(await upload(client, 'STOR', 'b.bin', 512 * KIB + 1), 552);
    assert.deepEqual(await fx.usage(), { bytes: 1536 * KIB, files: 2 });
    assert.equal(await upload(client, 'STOR', 'a.bin', 1536 * KIB), 226);
    assert.deepEqual(await fx.usage(), { bytes: 2 * MIB, files: 2 });
    await client.command('DELE before.bin', 250);
    assert.deepEqual(await fx.usage(), { bytes: 1536 * KIB, files: 1 });
    await client.command('MKD d', 257);
    await client.command('RNFR a.bin', 350);
    await client.command('RNTO d/a.bin', 250);
    assert.deepEqual(await fx.usage(), { bytes: 1536 * KIB, files: 1 });
    assert.equal(await upload(client, 'APPE', 'd/a.bin', 256 * KIB), 226);
    assert.equal(await upload(client, 'APPE', 'd/a.bin', 256 * KIB + 1), 552);
    // An APPE aborted keeps what it wrote in place (resumable), never more than the quota.
    const appended = (await fileSize(fx.root, 'd/a.bin'))!;
    assert.ok(appended >= 1792 * KIB && appended <= 2 * MIB, `${appended}`);
    assert.deepEqual(await fx.usage(), { bytes: appended, files: 1 });
    await client.command('REST 1024', 350);
    assert.equal(await upload(client, 'STOR', 'd/a.bin', 1024), 226); // cut at 2 KiB
    assert.deepEqual(await fx.usage(), { bytes: 2 * KIB, files: 1 });
    await client.command('DELE d/a.bin', 250);
    await client.command('RMD d', 250);
    assert.deepEqual(await fx.usage(), { bytes: 0, files: 0 });
    const events = fx.events.map((e) => `${e.name} ${e.path}`);
    assert.deepEqual(events.filter((e) => e.startsWith('upload-aborted')), ['upload-aborted /a.bin', 'upload-aborted /b.bin', 'upload-aborted /d/a.bin']);
  });

  test('quotaFiles refuses a new file with 552 before the data connection, and lets files be replaced', async (t) => {
    const fx = await setup(t, { limits: { quotaFiles: 2 } });
    const client = await login(t, fx.port);
    assert.equal(await upload(client, 'STOR', '1', 10), 226);
    assert.equal(await upload(client, 'STOR', '2', 10), 226);
    const data = await client.passive();
    client.send('STOR 3');
    const reply = await client.read();
    data.destroy();
    assert.equal(reply.code, 552);
    assert.match(reply.text, /Exceeded storage allocation/);
    assert.equal(await upload(client, 'STOR', '2', 20), 226);
    assert.deepEqual(await fx.usage(), { bytes: 30, files: 2 });
  });

  test('a client that disconnects mid-upload, or sends ABOR, leaves the count exact', async (t) => {
    const fx = await setup(t, { limits: { quotaBytes: 64 * MIB } });
    await writeFile(path.join(fx.root, 'old.bin'), Buffer.alloc(1000));
    const client = await login(t, fx.port);
    const data = await client.passive();
    client.send('STOR old.bin');
    await client.expect(150);
    await send(data, 4 * MIB);
    client.close(); // both connections go without QUIT: an abort
    data.destroy();
    assert.deepEqual(await fx.usage(), { bytes: 1000, files: 1 });
    const second = await login(t, fx.port);
    const data2 = await second.passive();
    second.send('APPE old.bin');
    await second.expect(150);
    await send(data2, 2 * MIB);
    second.send('ABOR');
    assert.equal((await second.read(10_000)).code, 426);
    assert.equal((await second.read(10_000)).code, 226);
    data2.destroy();
    // An aborted APPE keeps what it wrote (resumable): the count follows the file.
    const size = (await fileSize(fx.root, 'old.bin'))!;
    assert.ok(size > 1000);
    assert.deepEqual(await fx.usage(), { bytes: size, files: 1 });
    assert.equal(await readFile(path.join(fx.root, 'old.bin')).then((b) => b.length), size);
  });

  test('sessions of one user share the quota: together they never store more than it, and the count stays exact', async (t) => {
    const fx = await setup(t, { perUserLimits: { quotaBytes: 3 * MIB } });
    const clients = await Promise.all([login(t, fx.port), login(t, fx.port), login(t, fx.port)]);
    // 3 x 2 MiB at once: bytes in flight count as used, so at most one commits (maybe none, if all were halfway together).
    const codes = await Promise.all(clients.map((c, i) => upload(c, 'STOR', `${i}.bin`, 2 * MIB)));
    assert.ok(codes.every((c) => c === 226 || c === 552), codes.join());
    assert.ok(codes.filter((c) => c === 226).length <= 1, codes.join());
    const usage = await fx.usage();
    assert.deepEqual(usage, { bytes: codes.filter((c) => c === 226).length * 2 * MIB, files: codes.filter((c) => c === 226).length });
    // One after the other, the room left is used exactly.
    assert.equal(await upload(clients[0]!, 'STOR', 'fill.bin', 3 * MIB - usage!.bytes), 226);
    assert.equal(await upload(clients[1]!, 'STOR', 'one-more.bin', 1), 552);
    assert.deepEqual(await fx.usage(), { bytes: 3 * MIB, files: usage!.files + 1 });
  });

  test('the home is counted at the first change after a start (files already there count), and usage() reports it', async (t) => {
    const fx = await setup(t, { limits: { quotaBytes: 100 * KIB } });
    await writeFile(path.join(fx.root, 'big.bin'), Buffer.alloc(90 * KIB));
    assert.equal(await fx.server.usage(USER), null, 'not counted before any change');
    const client = await login(t, fx.port);
    assert.equal(await upload(client, 'STOR', 'x.bin', 20 * KIB), 552);
    assert.deepEqual(await fx.usage(), { bytes: 90 * KIB, files: 1 });
  });
});

describe('quotas: one change at a time per file (450 file busy)', () => {
  /** Open a STOR of `name` on `client` and send `bytes` without ending it; returns the data socket. */
  async function openUpload(client: RawClient, name: string, bytes: number): Promise<net.Socket> {
    const data = await client.passive();
    client.send(`STOR ${name}`);
    await client.expect(150);
    data.on('error', () => undefined);
    data.write(randomBytes(bytes));
    return data;
  }

  test('two sessions storing the same new name at once: the second gets 450 (or they run one after the other), and the count equals the files', async (t) => {
    const fx = await setup(t, { limits: { quotaBytes: 10 * MIB } });
    const [a, b] = await Promise.all([login(t, fx.port), login(t, fx.port)]);
    // Held open: the second upload of that path is refused, before its data connection.
    const held = await openUpload(a, 'x.bin', 1000);
    const refused = await b.passive();
    b.send('STOR x.bin');
    assert.equal((await b.read()).code, 450);
    refused.destroy();
    held.end();
    assert.equal((await a.read(10_000)).code, 226);
    assert.deepEqual(await fx.usage(), await storageUsage(fx.storage));
    // Truly at once, several rounds on new names and on the same (existing) name.
    for (const name of ['y.bin', 'y.bin', 'z.bin']) {
      const codes = await Promise.all([upload(a, 'STOR', name, 1000), upload(b, 'STOR', name, 3000)]);
      assert.ok(codes.every((c) => c === 226 || c === 450), codes.join());
      assert.ok(codes.includes(226), codes.join());
      const usage = await fx.usage();
      assert.deepEqual(usage, await storageUsage(fx.storage));
    }
    assert.equal((await fx.usage())!.files, 3);
  });

  test('DELE, RNFR/RNTO from and to a file being uploaded get 450; the same commands right after the 226 work', async (t) => {
    const fx = await setup(t, { limits: { quotaBytes: 10 * MIB } });
    await writeFile(path.join(fx.root, 'other.bin'), Buffer.alloc(500));
    await writeFile(path.join(fx.root, 'up.bin'), Buffer.alloc(100)); // an overwrite: RNFR finds the old file
    const [a, b] = await Promise.all([login(t, fx.port), login(t, fx.port)]);
    const held = await openUpload(a, 'up.bin', 2000);
    await b.command('DELE up.bin', 450);
    await b.command('RNFR other.bin', 350);
    await b.command('RNTO up.bin', 450);
    await b.command('RNFR up.bin', 350);
    await b.command('RNTO moved.bin', 450);
    held.end();
    assert.equal((await a.read(10_000)).code, 226);
    assert.deepEqual(await fx.usage(), { bytes: 2500, files: 2 });
    // The usual upload under a temporary name, then a rename: no 450 though the upload settles after its 226.
    assert.equal(await upload(a, 'STOR', 'tmp.part', 3000), 226);
    await a.command('RNFR tmp.part', 350);
    await a.command('RNTO up.bin', 250);
    assert.deepEqual(await fx.usage(), { bytes: 3500, files: 2 });
    assert.equal(await upload(a, 'STOR', 'gone.bin', 100), 226);
    await a.command('DELE gone.bin', 250);
    await a.command('DELE up.bin', 250);
    assert.deepEqual(await fx.usage(), { bytes: 500, files: 1 });
    assert.deepEqual(await fx.usage(), await storageUsage(fx.storage));
  });
});

describe('storage limits over S3 (Ceph)', { skip: cephSkip() }, () => {
  test('maximum file size and quota: 552 at once, multipart aborted, nothing stored, count exact', async (t) => {
    const ceph = await sharedCeph();
    t.after(() => stopSharedCeph());
    const client = cephClient(ceph);
    t.after(() => client.destroy());
    const bucket = await createBucket(ceph, client);
    const credentials = { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey };
    const storage = new S3Storage({ bucket, prefix: 'home/', endpoint: ceph.endpoint, forcePathStyle: true, credentials, partSizeBytes: 5 * MIB });
    t.after(() => storage.destroy());
    const fx = await setup(t, { storage, maxFileSizeBytes: 12 * MIB, limits: { quotaBytes: 20 * MIB } });
    const ftp = await login(t, fx.port);
    assert.equal(await upload(ftp, 'STOR', 'huge.bin', 64 * MIB), 552);
    assert.equal(await upload(ftp, 'STOR', 'a.bin', 11 * MIB), 226);
    assert.deepEqual(await fx.usage(), { bytes: 11 * MIB, files: 1 });
    assert.equal(await upload(ftp, 'STOR', 'b.bin', 10 * MIB), 552); // 21 MiB > 20 MiB
    assert.deepEqual(await fx.usage(), { bytes: 11 * MIB, files: 1 });
    await ftp.command('MKD d', 257);
    await ftp.command('MKD d/e', 257);
    assert.equal(await upload(ftp, 'STOR', 'd/e/deep.bin', 1000), 226);
    assert.equal(await upload(ftp, 'STOR', 'd/top.bin', 24), 226);
    assert.deepEqual(await fx.usage(), { bytes: 11 * MIB + 1024, files: 3 });
    // S3Storage.usage() (flat listings per top-level folder) agrees with a walk of list().
    assert.deepEqual(await storage.usage(), { bytes: 11 * MIB + 1024, files: 3 });
    assert.deepEqual(await storageUsage({ capabilities: storage.capabilities, list: (p: string) => storage.list(p) } as unknown as Storage), { bytes: 11 * MIB + 1024, files: 3 });
    const deadline = Date.now() + 10_000;
    while ((await pendingUploads(client, bucket)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await pendingUploads(client, bucket), 0, 'every refused multipart upload was aborted');
  });
});

/** Run a command (bounded); resolves with its exit code and output. */
function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function curl(args: string[]): Promise<{ code: number; stderr: string }> {
  return run('curl', ['--silent', '--show-error', ...args]);
}
