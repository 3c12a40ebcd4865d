/**
 * `hooks:` in the daemon's config: `ferry serve` (one process, and two
 * workers) runs a command hook and delivers a signed webhook for a curl
 * upload, each with the upload's SHA-256; bad hook settings are refused
 * with the key and what is expected.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/validate.js';
import { startCli } from '../helpers/cli.js';
import { listenLocal } from '../helpers/local-http.js';

async function until(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function receiver(t: TestContext) {
  const got: Array<{ headers: http.IncomingHttpHeaders; body: Buffer }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(204).end();
    });
  });
  return { url: `${await listenLocal(t, server)}/events`, got };
}

const RECORDER = `
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => require('node:fs').writeFileSync(process.argv[2], JSON.stringify({ input, sha: process.env.FERRY_SHA256, path: process.env.FERRY_PATH, pid: process.ppid })));
`;

for (const workers of [1, 2]) {
  test(`ferry serve (${workers} process${workers > 1 ? 'es' : ''}) runs a command hook and a signed webhook for a curl upload, with its SHA-256`, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-hooks-cli-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(path.join(dir, 'files'));
    await writeFile(path.join(dir, 'record.cjs'), RECORDER);
    await writeFile(path.join(dir, 'secret'), 'from a file\n');
    const out = path.join(dir, 'out.json');
    const hook = await receiver(t);
    await writeFile(
      path.join(dir, 'ferry.yaml'),
      [
        'host: 127.0.0.1',
        'port: 0',
        `workers: ${workers}`,
        // One failed login bans: the ban's hook runs where the defender is (the primary, with workers).
        'defender:',
        '  threshold: 2',
        'storage:',
        '  root: files',
        'hooks:',
        '  commands:',
        '    - events: [file-received]',
        `      command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(path.join(dir, 'record.cjs'))}, ${JSON.stringify(out)}]`,
        '  webhooks:',
        '    - events: [file-received, login, ban]',
        `      url: ${hook.url}`,
        `      secretFile: ${path.join(dir, 'secret')}`,
        '',
      ].join('\n'),
    );
    const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml', '--user', 'alice:pw', '--write'], dir, 30_000);
    const data = randomBytes(1024 * 1024 + 3);
    await writeFile(path.join(dir, 'up.bin'), data);
    const code = await new Promise<number>((resolve) =>
      execFile('curl', ['-sS', '--max-time', '10', '-T', path.join(dir, 'up.bin'), `ftp://alice:pw@127.0.0.1:${ferry.port}/up.bin`], (err) => resolve(err ? Number(err.code) : 0)),
    );
    assert.equal(code, 0, ferry.output());
    const sha = createHash('sha256').update(data).digest('hex');
    await until(async () => (await readFile(out, 'utf8').catch(() => '')) !== '' && hook.got.length >= 2);
    const ran = JSON.parse(await readFile(out, 'utf8')) as { input: string; sha: string; path: string };
    assert.equal(ran.sha, sha);
    assert.equal(ran.path, '/up.bin');
    assert.equal((JSON.parse(ran.input) as { info: { sha256: string } }).info.sha256, sha);
    const events = hook.got.map((r) => r.headers['x-ferry-event']).sort();
    assert.deepEqual(events, ['file-received', 'login']);
    for (const { headers, body } of hook.got) {
      assert.equal(headers['x-ferry-signature'], `sha256=${createHmac('sha256', 'from a file').update(body).digest('hex')}`);
    }
    const received = hook.got.find((r) => r.headers['x-ferry-event'] === 'file-received')!;
    assert.equal((JSON.parse(received.body.toString()) as { info: { sha256: string; size: number } }).info.sha256, sha);
    await new Promise((resolve) => execFile('curl', ['-sS', '--max-time', '10', `ftp://alice:wrong@127.0.0.1:${ferry.port}/`], resolve));
    await until(async () => hook.got.some((r) => r.headers['x-ferry-event'] === 'ban'));
    const ban = JSON.parse(hook.got.find((r) => r.headers['x-ferry-event'] === 'ban')!.body.toString()) as { info: { address: string } };
    assert.equal(ban.info.address, '127.0.0.1');
  });
}

test('hooks.beforeUpload: the URL allows, refuses (curl sees 550 and the reason) or does not answer in time (451, fails closed)', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-hooks-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'files'));
  const asked: Array<{ signature: string | undefined; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      asked.push({ signature: req.headers['x-ferry-signature'] as string | undefined, body });
      const { path: file } = JSON.parse(body) as { path: string };
      if (file.endsWith('.exe')) res.writeHead(200).end(JSON.stringify({ allow: false, reason: 'No programs here, please.' }));
      else if (file.includes('slow')) setTimeout(() => res.destroyed || res.writeHead(200).end(), 10_000).unref();
      else res.writeHead(200).end(file.includes('empty') ? '' : '{"allow": true}');
    });
  });
  const url = `${await listenLocal(t, server)}/may-i`;
  await writeFile(path.join(dir, 'ferry.yaml'), `host: 127.0.0.1\nport: 0\nstorage:\n  root: files\nhooks:\n  beforeUpload:\n    url: ${url}\n    secret: s3\n    timeoutMs: 500\n`);
  const ferry = await startCli(t, ['serve', '--config', 'ferry.yaml', '--user', 'alice:pw', '--write'], dir, 30_000);
  await writeFile(path.join(dir, 'local'), 'data');
  const put = (name: string) =>
    new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile('curl', ['-sS', '-v', '--max-time', '10', '-T', path.join(dir, 'local'), `ftp://alice:pw@127.0.0.1:${ferry.port}/${name}`], (err, _out, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr })),
    );
  assert.equal((await put('ok.txt')).code, 0);
  assert.equal((await put('empty.txt')).code, 0);
  const refused = await put('tool.exe');
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /< 550 No programs here, please\./);
  const slow = await put('slow.txt');
  assert.notEqual(slow.code, 0);
  assert.match(slow.stderr, /< 451 /);
  assert.equal(await readFile(path.join(dir, 'files', 'ok.txt'), 'utf8'), 'data');
  await assert.rejects(readFile(path.join(dir, 'files', 'tool.exe')), { code: 'ENOENT' });
  await assert.rejects(readFile(path.join(dir, 'files', 'slow.txt')), { code: 'ENOENT' });
  const request = JSON.parse(asked[2]!.body) as Record<string, unknown>;
  assert.deepEqual({ ...request, sessionId: typeof request.sessionId }, { sessionId: 'string', remoteAddress: '127.0.0.1', username: 'alice', path: '/tool.exe', size: null, mode: 'replace', offset: 0 });
  for (const { signature, body } of asked) assert.equal(signature, `sha256=${createHmac('sha256', 's3').update(body).digest('hex')}`);
});

async function problems(yaml: string): Promise<string[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-hooks-config-'));
  try {
    await writeFile(path.join(dir, 'ferry.yaml'), `storage:\n  root: ${dir}\nhooks:\n${yaml}`);
    await loadConfig({ file: path.join(dir, 'ferry.yaml'), env: {} });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return [];
}

test('bad hook settings are refused with the key and what is expected: a shell line, an unknown event, two secrets', async () => {
  assert.match((await problems('  commands:\n    - events: [file-received]\n      command: "mail -s hi root"\n')).join('\n'), /hooks\.commands\.0\.command: .* is not a list: the program, then its arguments \(no shell\)/);
  assert.match((await problems('  commands:\n    - events: [file-recieved]\n      command: [true]\n')).join('\n'), /hooks\.commands\.0\.events\.0: "file-recieved" is not an event name \(connect, login, /);
  assert.match(
    (await problems('  webhooks:\n    - events: [login]\n      url: http://127.0.0.1:1/\n      secret: a\n      secretFile: /etc/x\n')).join('\n'),
    /hooks\.webhooks\.0\.secretFile: .* is not null when secret is set/,
  );
  assert.match((await problems('  beforeUpload:\n    url: ftp://x\n')).join('\n'), /hooks\.beforeUpload\.url: "ftp:\/\/x" is not an http:\/\/ or https:\/\/ URL/);
  assert.match((await problems('  beforeUpload:\n    url: https://u:p@x/\n')).join('\n'), /hooks\.beforeUpload\.url: .* is not an http:\/\/ or https:\/\/ URL without user:password@/);
  assert.deepEqual(await problems('  concurrency: 2\n  queueSize: 0\n'), []);
});
