/**
 * The upload's SHA-256 (file-received) and the daemon's event hooks:
 * commands run as real processes and webhooks delivered to a real local
 * HTTP server, fed by uploads from real clients (basic-ftp, curl).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import { Client } from 'basic-ftp';
import { EventHooks, type EventHooksSettings } from '../../src/observability/event-hooks.js';
import { delivery } from '../../src/observability/hook-event.js';
import { KILL_GRACE_MS, runCommand } from '../../src/observability/hook-commands.js';
import { deliver } from '../../src/observability/webhooks.js';
import type { Logger } from '../../src/observability/logger.js';
import type { ServerEvents } from '../../src/observability/events.js';
import { PASSWORD, USER, startServer, type TestServer } from '../helpers/server.js';
import { listenLocal } from '../helpers/local-http.js';

type Received = ServerEvents['file-received'][0];

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-hooks-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function client(t: TestContext, srv: TestServer): Promise<Client> {
  const c = new Client(10_000);
  t.after(() => c.close());
  await c.access({ host: srv.host, port: srv.port, user: USER, password: PASSWORD });
  return c;
}

/** The next `event` of `srv`, bounded in time. */
function next<K extends keyof ServerEvents>(srv: TestServer, event: K, timeoutMs = 10_000): Promise<ServerEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    srv.server.once(event, ((info: ServerEvents[K][0]) => {
      clearTimeout(timer);
      resolve(info);
    }) as never);
  });
}

/** Resolves when `check` holds, polling every 20 ms for at most `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A logger that keeps what it is given, by level. */
function recording(): { logger: Logger; lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> } {
  const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  const at = (level: string) => (fields: unknown, message?: string) => void lines.push({ level, fields: fields as Record<string, unknown>, message: message ?? '' });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return { logger, lines };
}

/** A local HTTP server that answers each request with `answer` (status and body) and keeps what it got. */
async function httpServer(t: TestContext, answer: (n: number) => { status: number; body?: string; delayMs?: number }) {
  const got: Array<{ headers: http.IncomingHttpHeaders; body: Buffer }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks) });
      const { status, body, delayMs = 0 } = answer(got.length);
      setTimeout(() => {
        if (!res.destroyed) res.writeHead(status, { 'content-type': 'application/json' }).end(body ?? '');
      }, delayMs).unref();
    });
  });
  return { url: `${await listenLocal(t, server)}/hook`, got };
}

describe('the upload SHA-256', () => {
  test('file-received carries the SHA-256 and size of what basic-ftp uploaded (Node crypto agrees)', async (t) => {
    const srv = await startServer(t);
    const c = await client(t, srv);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const received = next(srv, 'file-received');
    await c.uploadFrom(Readable.from([data]), 'big.bin');
    const info = await received;
    assert.equal(info.sha256, sha256(data));
    assert.equal(info.size, data.length);
    assert.equal(sha256(await readFile(path.join(srv.root, 'big.bin'))), info.sha256);
  });

  test('in TYPE A it is the digest of the stored bytes (CRLF converted), and APPE hashes only the bytes it added', async (t) => {
    const srv = await startServer(t);
    const c = await client(t, srv);
    await c.send('TYPE A');
    let received = next(srv, 'file-received');
    await c.uploadFrom(Readable.from([Buffer.from('one\r\ntwo\r\n')]), 'text.txt');
    let info = await received;
    assert.equal(info.sha256, sha256('one\ntwo\n'));
    assert.equal(info.size, 8);
    await c.send('TYPE I');
    received = next(srv, 'file-received');
    await c.appendFrom(Readable.from([Buffer.from('three\n')]), 'text.txt');
    info = await received;
    assert.equal(info.sha256, sha256('three\n'));
    assert.equal(info.size, 6);
    assert.equal(await readFile(path.join(srv.root, 'text.txt'), 'utf8'), 'one\ntwo\nthree\n');
  });

  test('uploadSha256: false leaves sha256 and size out', async (t) => {
    const srv = await startServer(t, { uploadSha256: false });
    const c = await client(t, srv);
    const received = next(srv, 'file-received');
    await c.uploadFrom(Readable.from([Buffer.from('x')]), 'x.txt');
    const info: Received = await received;
    assert.equal(info.sha256, undefined);
    assert.equal(info.size, undefined);
  });
});

/** A node script for command hooks: writes its stdin and FERRY_* environment to OUT (argv[2]) as JSON. */
const RECORDER = `
const fs = require('node:fs');
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('FERRY_') || k === 'PATH' || k === 'SECRET_FROM_PARENT' || k === 'EXTRA'));
  fs.writeFileSync(process.argv[2], JSON.stringify({ input, env, argv: process.argv.slice(3) }));
  console.log('recorded ' + process.argv[2]);
});
`;

function settings(partial: Partial<EventHooksSettings>): EventHooksSettings {
  return { commands: [], webhooks: [], concurrency: 4, queueSize: 100, ...partial };
}

describe('command hooks', () => {
  test('a command gets the upload event as JSON on stdin and FERRY_* variables, with the SHA-256 of the bytes curl sent', async (t) => {
    const dir = await tempDir(t);
    const script = path.join(dir, 'record.cjs');
    await writeFile(script, RECORDER);
    const out = path.join(dir, 'out.json');
    const srv = await startServer(t);
    const { logger, lines } = recording();
    process.env.SECRET_FROM_PARENT = 'must not leak';
    t.after(() => delete process.env.SECRET_FROM_PARENT);
    // A file name a shell would expand: an argument list passes it as it is.
    const hooks = new EventHooks(settings({ commands: [{ events: ['file-received'], command: [process.execPath, script, out, '$(touch /tmp/x) *'], env: { EXTRA: 'yes' }, timeoutMs: 10_000 }] }), logger);
    hooks.attach(srv.server);
    t.after(() => hooks.close(1000));
    const data = randomBytes(200_000);
    const local = path.join(dir, 'up.bin');
    await writeFile(local, data);
    const curl = await new Promise<number>((resolve) =>
      execFile('curl', ['-sS', '--max-time', '10', '-T', local, `ftp://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${srv.port}/in/up.bin`, '--ftp-create-dirs'], (err) => resolve(err ? Number(err.code) : 0)),
    );
    assert.equal(curl, 0);
    await until(() => lines.some((l) => l.message === 'hook command done'));
    const got = JSON.parse(await readFile(out, 'utf8')) as { input: string; env: Record<string, string>; argv: string[] };
    const body = JSON.parse(got.input) as { id: string; event: string; info: Received };
    assert.equal(body.event, 'file-received');
    assert.equal(body.info.sha256, sha256(data));
    assert.equal(body.info.path, '/in/up.bin');
    assert.equal(got.env.FERRY_EVENT, 'file-received');
    assert.equal(got.env.FERRY_EVENT_ID, body.id);
    assert.equal(got.env.FERRY_SHA256, sha256(data));
    assert.equal(got.env.FERRY_SIZE, String(data.length));
    assert.equal(got.env.FERRY_PATH, '/in/up.bin');
    assert.equal(got.env.FERRY_USERNAME, USER);
    assert.equal(got.env.FERRY_REMOTE_ADDRESS, '127.0.0.1');
    assert.equal(got.env.EXTRA, 'yes');
    assert.equal(got.env.SECRET_FROM_PARENT, undefined, 'the daemon environment is not passed on');
    assert.deepEqual(got.argv, ['$(touch /tmp/x) *']);
    const done = lines.find((l) => l.message === 'hook command done')!;
    assert.equal(done.fields.exitCode, 0);
    assert.match(String(done.fields.stdout), /^recorded /);
    assert.equal(typeof done.fields.durationMs, 'number');
  });

  test('a command past its timeout gets SIGTERM, then SIGKILL (with what it started) when it ignores it', async (t) => {
    const dir = await tempDir(t);
    const pidFile = path.join(dir, 'grandchild.pid');
    // Ignores SIGTERM and starts a grandchild in its group that would outlive it.
    const script = `
      const { spawn } = require('node:child_process');
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));
      process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
      console.log('started');
      setInterval(() => {}, 1000);
    `;
    const outcome = await runCommand({ command: [process.execPath, '-e', script], timeoutMs: 500 }, delivery('login', { sessionId: 's', remoteAddress: '127.0.0.1', username: 'u' }));
    assert.equal(outcome.timedOut, true);
    assert.equal(outcome.signal, 'SIGKILL');
    assert.ok(outcome.durationMs >= 500 + KILL_GRACE_MS - 50, `took ${outcome.durationMs} ms`);
    assert.match(outcome.stdout, /started\nignoring SIGTERM/);
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    await until(() => {
      try {
        process.kill(grandchild, 0);
        return false;
      } catch {
        return true;
      }
    }, 5000);
  });

  test('a command that obeys SIGTERM stops at its timeout; one that cannot start and one that fails are logged as failures', async () => {
    const d = delivery('login', { sessionId: 's', remoteAddress: '127.0.0.1', username: 'u' });
    const term = await runCommand({ command: ['sleep', '30'], timeoutMs: 200 }, d);
    assert.equal(term.signal, 'SIGTERM');
    assert.ok(term.durationMs < KILL_GRACE_MS, `took ${term.durationMs} ms`);
    const missing = await runCommand({ command: ['/nonexistent/hook'], timeoutMs: 1000 }, d);
    assert.equal(missing.exitCode, null);
    assert.match(missing.stderr, /ENOENT/);
    const failing = await runCommand({ command: [process.execPath, '-e', 'console.error("x".repeat(5000)); process.exit(3)'], timeoutMs: 5000 }, d);
    assert.equal(failing.exitCode, 3);
    assert.equal(failing.stderr.length, 1024, 'the first KiB of output is kept');
  });

  test('at most `concurrency` commands run, `queueSize` wait, and the rest are dropped with a warning', async (t) => {
    const dir = await tempDir(t);
    const { logger, lines } = recording();
    const marker = path.join(dir, 'runs');
    // Each run appends a line; the first waits for a release file, holding the one slot.
    const release = path.join(dir, 'release');
    const script = `
      const fs = require('node:fs');
      fs.appendFileSync(${JSON.stringify(marker)}, 'x');
      const t = setInterval(() => { if (fs.existsSync(${JSON.stringify(release)})) { clearInterval(t); } }, 20);
    `;
    const hooks = new EventHooks(settings({ concurrency: 1, queueSize: 2, commands: [{ events: ['mkdir'], command: [process.execPath, '-e', script], timeoutMs: 10_000 }] }), logger);
    t.after(() => hooks.close(1000));
    for (let i = 0; i < 6; i++) hooks.dispatch('mkdir', { sessionId: 's', remoteAddress: '127.0.0.1', username: 'u', path: `/d${i}` });
    const dropped = lines.filter((l) => l.level === 'warn' && /queue full/.test(l.message));
    assert.equal(dropped.length, 3, '1 running + 2 waiting, 3 dropped');
    assert.equal(dropped[0]!.fields.event, 'mkdir');
    await writeFile(release, '');
    await until(async () => (await readFile(marker, 'utf8').catch(() => '')).length === 3);
    assert.equal(await hooks.close(5000), true);
    assert.equal((await readFile(marker, 'utf8')).length, 3);
  });
});

describe('webhooks', () => {
  test('a webhook gets the SHA-256 of an upload, signed with HMAC-SHA256, retried with backoff after 503s until delivered', async (t) => {
    const srv = await startServer(t);
    const secret = 'webhook secret';
    const receiver = await httpServer(t, (n) => ({ status: n < 3 ? 503 : 204 }));
    const { logger, lines } = recording();
    const hooks = new EventHooks(settings({ webhooks: [{ events: ['file-received'], url: receiver.url, secret, timeoutMs: 2000, retries: 3, retryDelayMs: 100 }] }), logger);
    hooks.attach(srv.server);
    t.after(() => hooks.close(1000));
    const c = await client(t, srv);
    const data = randomBytes(100_000);
    await c.uploadFrom(Readable.from([data]), 'hooked.bin');
    await until(() => lines.some((l) => l.message === 'webhook delivered'));
    assert.equal(receiver.got.length, 3);
    const ids = new Set(receiver.got.map((r) => r.headers['x-ferry-delivery']));
    assert.equal(ids.size, 1, 'the same delivery id on every attempt');
    for (const { headers, body } of receiver.got) {
      assert.equal(headers['x-ferry-signature'], `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
      assert.equal(headers['x-ferry-event'], 'file-received');
      assert.equal(headers['content-type'], 'application/json');
    }
    const sent = JSON.parse(receiver.got[2]!.body.toString()) as { id: string; event: string; info: Received };
    assert.equal(sent.id, [...ids][0]);
    assert.equal(sent.info.sha256, sha256(data));
    assert.equal(sent.info.size, data.length);
    const delivered = lines.find((l) => l.message === 'webhook delivered')!;
    assert.equal(delivered.fields.attempts, 3);
    // Backoff: 100 ms, then 200 ms, between the three attempts.
    assert.ok((delivered.fields.durationMs as number) >= 300, `took ${String(delivered.fields.durationMs)} ms`);
  });

  test('a 4xx is final, a receiver that never answers times out, and retries give up after `retries`', async (t) => {
    const d = delivery('delete', { sessionId: 's', remoteAddress: '127.0.0.1', username: 'u', path: '/x' });
    const refusing = await httpServer(t, () => ({ status: 400 }));
    const outcome = await deliver({ url: refusing.url, secret: null, timeoutMs: 2000, retries: 3, retryDelayMs: 10 }, d);
    assert.deepEqual(outcome, { delivered: false, attempts: 1, status: 400, error: 'HTTP 400' });
    assert.equal(refusing.got[0]!.headers['x-ferry-signature'], undefined, 'no secret, no signature');
    const silent = await httpServer(t, () => ({ status: 200, delayMs: 60_000 }));
    const timedOut = await deliver({ url: silent.url, secret: null, timeoutMs: 200, retries: 1, retryDelayMs: 10 }, d);
    assert.equal(timedOut.delivered, false);
    assert.equal(timedOut.attempts, 2);
    assert.equal(timedOut.error, 'no answer within 200 ms');
  });
});
