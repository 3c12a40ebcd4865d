/**
 * The integrity commands over real sessions on local disk: HASH with OPTS
 * HASH and RANG (draft-bryan-ftpext-hash-02), XCRC/XMD5/XSHA1/XSHA256/
 * XSHA512, checked against Node's crypto and zlib.crc32; their errors; ABOR,
 * QUIT and a vanished client stopping the hash of a large (sparse) file; the
 * bound on concurrent hashes; and real clients (curl, Python's ftplib)
 * sending HASH. The same values on S3: s3-hash.test.ts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';
import { LocalStorage, type ReadOptions } from '../../src/index.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { PASSWORD, startServer, USER, type TestServerOptions } from '../helpers/server.js';
import { NODE_DIGESTS } from '../helpers/digests.js';

const NODE = NODE_DIGESTS;
const X_COMMANDS: Record<string, string> = { XCRC: 'CRC32', XMD5: 'MD5', XSHA1: 'SHA-1', XSHA256: 'SHA-256', XSHA512: 'SHA-512' };

/** Larger than one read chunk of the local storage, and not a multiple of it. */
const DATA = randomBytes(3 * 1024 * 1024 + 12_345);
/** A sparse file this large takes seconds to hash (SHA-512 of zeros runs well under 4 GiB/s) and no time to create. */
const BIG_BYTES = 4 * 1024 ** 3;

/** What the hashing read of big.bin did: the bytes it delivered, and whether its stream was closed. */
interface BigReads {
  bytes: number;
  closed: boolean;
}

/**
 * A server over LocalStorage whose reads of big.bin are counted (the real
 * stream, piped through a counter): the tests see that an aborted hash
 * stopped reading, not only that it answered 426.
 */
async function setup(t: TestContext, options: TestServerOptions = {}): Promise<{ port: number; root: string; big: BigReads }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-hash-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const big: BigReads = { bytes: 0, closed: false };
  const local = new LocalStorage(root);
  const storage = new Proxy(local, {
    get(target, name) {
      if (name === 'read') {
        return async (file: string, readOptions?: ReadOptions): Promise<Readable> => {
          const source = await target.read(file, readOptions);
          if (!file.endsWith('big.bin')) return source;
          const counter = new Transform({
            transform(chunk: Buffer, _encoding, done) {
              big.bytes += chunk.length;
              done(null, chunk);
            },
          });
          pipeline(source, counter, () => (big.closed = true));
          return counter;
        };
      }
      const value = Reflect.get(target, name) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const server = await startServer(t, { ...options, storage });
  await writeFile(path.join(root, 'data.bin'), DATA);
  await writeFile(path.join(root, 'my file 1 2.bin'), DATA.subarray(0, 1000));
  await writeFile(path.join(root, 'empty'), '');
  await mkdir(path.join(root, 'dir'));
  const file = await open(path.join(root, 'big.bin'), 'w');
  await file.truncate(BIG_BYTES);
  await file.close();
  return { port: server.port, root, big };
}

/** Wait (bounded) until `check` holds. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await sleep(25);
  assert.ok(check(), what);
}

async function login(t: TestContext, port: number): Promise<RawClient> {
  const client = await RawClient.login(port, USER, PASSWORD);
  t.after(() => client.close());
  return client;
}

/** "213 <algorithm> <start>-<end> <hash> <pathname>" split into its fields. */
function parseHash(text: string): { algorithm: string; range: string; hex: string; name: string } {
  const match = /^(\S+) (\d+-\d+) ([0-9a-f]+) (.+)$/.exec(text);
  assert.ok(match, `not a HASH reply: ${text}`);
  return { algorithm: match[1]!, range: match[2]!, hex: match[3]!, name: match[4]! };
}

describe('HASH', () => {
  test('every algorithm, chosen with OPTS HASH and starred in FEAT, equals Node crypto and zlib.crc32', async (t) => {
    const { port } = await setup(t);
    const client = await login(t, port);
    assert.ok((await client.command('FEAT', 211)).lines.includes(' HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32'));
    assert.equal((await client.command('OPTS HASH', 200)).text, 'SHA-256');
    for (const algorithm of Object.keys(NODE)) {
      assert.equal((await client.command(`OPTS HASH ${algorithm.toLowerCase()}`, 200)).text, algorithm);
      const reply = parseHash((await client.command('HASH data.bin', 213)).text);
      assert.deepEqual(reply, { algorithm, range: `0-${DATA.length - 1}`, hex: NODE[algorithm]!(DATA), name: 'data.bin' });
    }
    const feat = await client.command('FEAT', 211);
    assert.ok(feat.lines.includes(' HASH SHA-256;SHA-512;SHA-1;MD5;CRC32*'), feat.lines.join('|'));
    assert.equal((await client.command('OPTS HASH CRC-37', 501)).text, 'Unknown algorithm, current selection not changed.');
    assert.equal((await client.command('OPTS HASH', 200)).text, 'CRC32');
    // An empty file, and a name with spaces (the pathname comes back as sent).
    assert.equal((await client.command('HASH empty', 213)).text, `CRC32 0-0 00000000 empty`);
    assert.equal(parseHash((await client.command('HASH my file 1 2.bin', 213)).text).hex, NODE.CRC32!(DATA.subarray(0, 1000)));
    // REIN goes back to the default (§3.2: until the session is reinitialized).
    await client.command('REIN', 220);
    assert.equal((await client.command('OPTS HASH', 200)).text, 'SHA-256');
  });

  test('RANG selects an inclusive range for the next HASH only; 1 0 resets; a bad one is 501 and resets', async (t) => {
    const { port } = await setup(t);
    const client = await login(t, port);
    await client.command('RANG 100 199', 350);
    assert.deepEqual(parseHash((await client.command('HASH data.bin', 213)).text), {
      algorithm: 'SHA-256',
      range: '100-199',
      hex: NODE['SHA-256']!(DATA.subarray(100, 200)),
      name: 'data.bin',
    });
    // Used once: the next HASH covers the whole file.
    assert.equal(parseHash((await client.command('HASH data.bin', 213)).text).range, `0-${DATA.length - 1}`);
    // An end past the file stops at its end.
    await client.command('RANG 3000000 99999999', 350);
    const tail = parseHash((await client.command('HASH data.bin', 213)).text);
    assert.deepEqual([tail.range, tail.hex], [`3000000-${DATA.length - 1}`, NODE['SHA-256']!(DATA.subarray(3_000_000))]);
    await client.command('RANG 0 0', 350);
    await client.command('RANG 1 0', 350);
    assert.equal(parseHash((await client.command('HASH data.bin', 213)).text).range, `0-${DATA.length - 1}`);
    await client.command('RANG 0 9', 350);
    await client.command('RANG 9 2', 501);
    assert.equal(parseHash((await client.command('HASH data.bin', 213)).text).range, `0-${DATA.length - 1}`);
    // A range that starts past the last byte is refused (554), and is used up like any other.
    await client.command(`RANG ${DATA.length} ${DATA.length + 10}`, 350);
    await client.command('HASH data.bin', 554);
    await client.command('HASH data.bin', 213);
    // RETR and STOR do not honour RANG (FEAT has no "RANG STREAM"): refused rather than sending the whole file.
    assert.ok(!(await client.command('FEAT', 211)).lines.some((line) => line.startsWith(' RANG')));
    await client.command('RANG 0 9', 350);
    await client.command('RETR data.bin', 504);
    await client.command('HASH data.bin', 213);
  });

  test('errors: a directory is 553, a missing file 550, no read permission 550, not logged in 530', async (t) => {
    const { port } = await setup(t, { permissions: 'el' });
    const client = await RawClient.connect(port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command('HASH data.bin', 530);
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    await client.command('HASH data.bin', 550);
    await client.command('XSHA256 data.bin', 550);
    await client.command('HASH', 501);
  });

  test('errors with read permission: directories, missing files, paths outside the root, bad X* ranges', async (t) => {
    const { port } = await setup(t);
    const client = await login(t, port);
    await client.command('HASH dir', 553);
    await client.command('HASH /', 553);
    await client.command('XCRC dir', 550);
    await client.command('HASH nothing.bin', 550);
    await client.command('XMD5 nothing.bin', 550);
    assert.equal(parseHash((await client.command('HASH ../../../data.bin', 213)).text).hex, NODE['SHA-256']!(DATA), 'the jail maps .. to the root');
    await client.command('XSHA1 data.bin 10 5', 501);
    await client.command(`XSHA1 data.bin ${DATA.length} ${DATA.length + 5}`, 554);
    await client.command('RANG x y', 501);
  });
});

describe('hooks', () => {
  test('the beforeDownload hooks run for HASH and X* as for RETR: they refuse, and rewrite the path hashed', async (t) => {
    const asked: Array<{ path: string; offset: number }> = [];
    const { port } = await setup(t, {
      beforeListen: (server) =>
        server.hook('beforeDownload', ({ path: p, offset }) => {
          asked.push({ path: p, offset });
          if (p === '/empty') return { deny: 'Not this one.' };
          return p === '/alias.bin' ? { path: '/data.bin' } : undefined;
        }),
    });
    const client = await login(t, port);
    assert.equal((await client.command('HASH empty', 550)).text, 'Not this one.');
    assert.equal((await client.command('XCRC empty', 550)).text, 'Not this one.');
    assert.equal((await client.command('HASH alias.bin', 213)).text, `SHA-256 0-${DATA.length - 1} ${NODE['SHA-256']!(DATA)} alias.bin`);
    await client.command('RANG 5 9', 350);
    await client.command('HASH data.bin', 213);
    assert.deepEqual(asked, [{ path: '/empty', offset: 0 }, { path: '/empty', offset: 0 }, { path: '/alias.bin', offset: 0 }, { path: '/data.bin', offset: 5 }]);
  });
});

describe('XCRC, XMD5, XSHA1, XSHA256, XSHA512', () => {
  test('each answers "250 <hex>" for the whole file or for [start, end), in FEAT, with quoted names', async (t) => {
    const { port } = await setup(t);
    const client = await login(t, port);
    const feat = (await client.command('FEAT', 211)).lines;
    for (const [verb, algorithm] of Object.entries(X_COMMANDS)) {
      assert.ok(feat.includes(` ${verb}`), `${verb} in FEAT`);
      const whole = await client.command(`${verb} data.bin`, 250);
      assert.deepEqual(whole.lines, [`250 ${NODE[algorithm]!(DATA)}`], verb);
      assert.equal((await client.command(`${verb} data.bin 1000 70000`, 250)).text, NODE[algorithm]!(DATA.subarray(1000, 70_000)), `${verb} range`);
      assert.equal((await client.command(`${verb} "my file 1 2.bin"`, 250)).text, NODE[algorithm]!(DATA.subarray(0, 1000)), `${verb} quoted`);
      assert.equal((await client.command(`${verb} "my file 1 2.bin" 0 10`, 250)).text, NODE[algorithm]!(DATA.subarray(0, 10)));
      // An end past the file stops at its end; an empty range is the digest of nothing.
      assert.equal((await client.command(`${verb} data.bin 5 999999999`, 250)).text, NODE[algorithm]!(DATA.subarray(5)));
      assert.equal((await client.command(`${verb} data.bin 7 7`, 250)).text, NODE[algorithm]!(Buffer.alloc(0)));
    }
  });
});

describe('stopping a hash', () => {
  test('ABOR stops the HASH of a 4 GiB file (426, then 226) and frees its slot; the session goes on', async (t) => {
    const { port, big } = await setup(t, { maxConcurrentHashes: 1 });
    const client = await login(t, port);
    await client.command('OPTS HASH SHA-512', 200);
    client.send('HASH big.bin');
    // While it runs, another session is answered and refused a second hash at once (the bound is 1).
    const other = await login(t, port);
    await until(() => big.bytes > 0, 'the hash started reading');
    await other.command('NOOP', 200);
    await other.command('XCRC data.bin', 450);
    const status = await client.command('STAT', 213);
    assert.match(status.lines.join('\n'), /HASH \/big\.bin: \d+ bytes in \d+\.\d s/);
    client.send('ABOR');
    assert.equal((await client.read(10_000)).code, 426);
    assert.equal((await client.read()).text, 'ABOR successful.');
    // It stopped reading: the stream is closed with most of the file unread.
    await until(() => big.closed, 'the read stream of big.bin is closed');
    assert.ok(big.bytes > 0 && big.bytes < BIG_BYTES, `${big.bytes} bytes read`);
    await client.command('NOOP', 200);
    assert.equal((await other.command('XCRC data.bin', 250)).text, NODE.CRC32!(DATA));
    assert.equal(parseHash((await client.command('HASH data.bin', 213)).text).hex, NODE['SHA-512']!(DATA));
  });

  test('QUIT stops a running HASH (426, then 221) and a client that vanishes frees its slot', async (t) => {
    const { port, big } = await setup(t, { maxConcurrentHashes: 1 });
    const quitter = await login(t, port);
    quitter.send('XSHA512 big.bin');
    await until(() => big.bytes > 0, 'the hash started reading');
    quitter.send('QUIT');
    assert.equal((await quitter.read(10_000)).code, 426);
    assert.equal((await quitter.read()).code, 221);
    await until(() => big.closed, 'the read stream of big.bin is closed');
    assert.ok(big.bytes < BIG_BYTES, `${big.bytes} bytes read`);

    const vanishing = await login(t, port);
    vanishing.send('HASH big.bin');
    const other = await login(t, port);
    // The slot is taken once the stat is done; wait (bounded) until the second hash is refused.
    for (let i = 0; i < 50 && (await other.command('XCRC empty')).code !== 450; i++) await sleep(20);
    vanishing.close();
    let code = 0;
    for (let i = 0; i < 100 && code !== 250; i++) {
      code = (await other.command('XCRC data.bin')).code;
      if (code !== 250) await sleep(50);
    }
    assert.equal(code, 250, 'the slot of the vanished client is free again');
  });
});

describe('real clients', () => {
  test('curl sends HASH (-Q) and prints the 213 reply; Python ftplib sends OPTS HASH, RANG and XSHA256', async (t) => {
    const { port } = await setup(t);
    const trace = await run('curl', ['-sS', '-v', '--max-time', '10', '-Q', 'HASH data.bin', '-u', `${USER}:${PASSWORD}`, `ftp://127.0.0.1:${port}/empty`]);
    const reply = trace.split('\n').find((line) => line.startsWith('< 213 SHA-256 '));
    assert.ok(reply, trace);
    assert.equal(parseHash(reply.slice(6).trim()).hex, NODE['SHA-256']!(DATA));

    const script = [
      'import ftplib, json, sys',
      `ftp = ftplib.FTP(); ftp.connect('127.0.0.1', ${port}, timeout=10); ftp.login(${JSON.stringify(USER)}, ${JSON.stringify(PASSWORD)})`,
      'out = [ftp.sendcmd("OPTS HASH MD5"), ftp.sendcmd("RANG 0 99"), ftp.sendcmd("HASH data.bin"), ftp.sendcmd("XSHA256 data.bin")]',
      'ftp.quit(); print(json.dumps(out))',
    ].join('\n');
    const out = JSON.parse(await run('python3', ['-c', script])) as string[];
    assert.deepEqual(out.slice(0, 2).map((line) => line.slice(0, 3)), ['200', '350']);
    assert.equal(out[2], `213 MD5 0-99 ${NODE.MD5!(DATA.subarray(0, 100))} data.bin`);
    assert.equal(out[3], `250 ${NODE['SHA-256']!(DATA)}`);
  });
});

/** Run a client with bounded time: resolves with its stdout (or, for curl's -v trace, stderr too). */
function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 20_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} failed: ${err.message}\n${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}
