/**
 * FTPS through the `ferry` command: `ferry cert --self-signed`, serving with
 * --tls-cert/--tls-key (explicit and implicit), certificate reload on
 * SIGHUP, and cluster mode with TLS in the workers.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { Client, FTPError } from 'basic-ftp';
import { createSelfSignedCertificate } from '../../src/tls/self-signed.js';
import { exitOf, runCli, startCli } from '../helpers/cli.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { collector } from '../helpers/streams.js';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ftps-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function makeCert(dir: string): Promise<{ cert: string; key: string }> {
  const child = runCli(['cert', '--self-signed', '--host', '127.0.0.1,localhost', '--out', dir], dir);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  assert.equal(await exitOf(child), 0, out);
  return { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}

async function download(port: number, secure: true | 'implicit', ca: string, name: string): Promise<string> {
  const client = new Client(10_000);
  try {
    await client.access({ host: '127.0.0.1', port, user: 'u', password: 'pw', secure, secureOptions: { ca } });
    const { sink, bytes } = collector();
    await client.downloadTo(sink, name);
    return bytes().toString();
  } finally {
    client.close();
  }
}

const implicitPortOf = (output: string): number => Number(/implicit TLS on port (\d+)/.exec(output)![1]);

test('ferry cert --self-signed writes a certificate for the hosts and a private key only its owner can read, and never overwrites them', async (t) => {
  const dir = await tempDir(t);
  const { cert, key } = await makeCert(dir);
  assert.equal((await stat(key)).mode & 0o777, 0o600);
  const x509 = new X509Certificate(await readFile(cert));
  assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(x509.checkHost('localhost'), 'localhost');
  assert.ok(x509.verify(x509.publicKey));
  const again = runCli(['cert', '--self-signed', '--host', 'x', '--out', dir], dir);
  let err = '';
  again.stderr!.on('data', (d) => (err += d));
  assert.equal(await exitOf(again), 2);
  assert.match(err, /already exists; pass --force/);

  // --force replaces both, and a key that had been left readable by others becomes private again.
  await chmod(key, 0o644);
  const before = await readFile(key, 'utf8');
  assert.equal(await exitOf(runCli(['cert', '--self-signed', '--host', 'x', '--out', dir, '--force'], dir)), 0);
  assert.equal((await stat(key)).mode & 0o777, 0o600);
  assert.notEqual(await readFile(key, 'utf8'), before);
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), []);
});

test('--tls-cert/--tls-key serve explicit FTPS, --tls-implicit-port implicit FTPS, and the default policy refuses clear-text logins', async (t) => {
  const dir = await tempDir(t);
  const { cert, key } = await makeCert(dir);
  const ca = await readFile(cert, 'utf8');
  await writeFile(path.join(dir, 'hello.txt'), 'hello over TLS');
  const cli = await startCli(t, ['--root', dir, '--host', '127.0.0.1', '--port', '0', '--user', 'u:pw', '--tls-cert', cert, '--tls-key', key, '--tls-implicit-port', '0'], dir);
  assert.match(cli.output(), /FTPS: AUTH TLS on port \d+, implicit TLS on port \d+ .*TLS policy: login/);
  assert.equal(await download(cli.port, true, ca, 'hello.txt'), 'hello over TLS');
  assert.equal(await download(implicitPortOf(cli.output()), 'implicit', ca, 'hello.txt'), 'hello over TLS');
  const plain = new Client(5000);
  t.after(() => plain.close());
  await assert.rejects(plain.access({ host: '127.0.0.1', port: cli.port, user: 'u', password: 'pw' }), (e: unknown) => e instanceof FTPError && e.code === 530);
});

test("the configuration file's tls: section (paths relative to the file) serves FTPS with its policy", async (t) => {
  const dir = await tempDir(t);
  await makeCert(dir);
  const ca = await readFile(path.join(dir, 'cert.pem'), 'utf8');
  await writeFile(path.join(dir, 'hello.txt'), 'from the config');
  const config = ['host: 127.0.0.1', 'port: 0', 'storage:', `  root: ${dir}`, 'anonymous:', '  enabled: true', 'tls:', '  cert: cert.pem', '  key: key.pem', '  policy: data', '  anonymousExempt: false'];
  await writeFile(path.join(dir, 'ferry.yaml'), config.join('\n') + '\n');
  const cli = await startCli(t, ['--config', path.join(dir, 'ferry.yaml')], dir);
  assert.match(cli.output(), /TLS policy: data/);
  const plain = await RawClient.connect(cli.port);
  t.after(() => plain.close());
  await plain.expect(220);
  await plain.command('USER anonymous', 530);
  const client = new Client(10_000);
  t.after(() => client.close());
  await client.access({ host: '127.0.0.1', port: cli.port, user: 'anonymous', password: 'x', secure: true, secureOptions: { ca } });
  const { sink, bytes } = collector();
  await client.downloadTo(sink, 'hello.txt');
  assert.equal(bytes().toString(), 'from the config');
});

test('SIGHUP reloads the certificate files for new connections without dropping the open session', async (t) => {
  const dir = await tempDir(t);
  const { cert, key } = await makeCert(dir);
  const cli = await startCli(t, ['--root', dir, '--host', '127.0.0.1', '--port', '0', '--user', 'u:pw', '--tls-cert', cert, '--tls-key', key], dir);
  const open = await RawClient.connect(cli.port);
  t.after(() => open.close());
  await open.expect(220);
  await open.command('AUTH TLS', 234);
  await open.startTls();
  const next = createSelfSignedCertificate({ hosts: ['127.0.0.1', 'renewed.example'] });
  await writeFile(cert, next.cert);
  await writeFile(key, next.key);
  cli.child.kill('SIGHUP');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const fresh = await RawClient.connect(cli.port);
    await fresh.expect(220);
    await fresh.command('AUTH TLS', 234);
    const secure = await fresh.startTls();
    const renewed = /renewed\.example/.test(secure.getPeerX509Certificate()?.subjectAltName ?? '');
    fresh.close();
    if (renewed) break;
    assert.ok(Date.now() < deadline, `certificate not reloaded:\n${cli.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await open.command('USER u', 331);
  await open.command('PASS pw', 230);
  assert.ok(open.socket instanceof tls.TLSSocket);
});

test('cluster mode: workers load the certificate and serve explicit and implicit FTPS with session reuse', async (t) => {
  const dir = await tempDir(t);
  const { cert, key } = await makeCert(dir);
  const ca = await readFile(cert, 'utf8');
  await writeFile(path.join(dir, 'w.txt'), 'from a worker');
  const args = ['--root', dir, '--host', '127.0.0.1', '--port', '0', '--user', 'u:pw', '--workers', '2', '--tls-cert', cert, '--tls-key', key, '--tls-implicit-port', '0'];
  const cli = await startCli(t, args, dir);
  for (let i = 0; i < 3; i++) {
    assert.equal(await download(cli.port, true, ca, 'w.txt'), 'from a worker');
    assert.equal(await download(implicitPortOf(cli.output()), 'implicit', ca, 'w.txt'), 'from a worker');
  }
});

test('bad TLS flags end with a message that names the flag', async (t) => {
  const dir = await tempDir(t);
  for (const [args, message] of [
    [['--tls-cert', path.join(dir, 'missing.pem'), '--tls-key', path.join(dir, 'missing.pem')], /--tls-cert: .*missing\.pem: cannot read it/],
    [['--tls-cert', path.join(dir, 'x.pem')], /tls\.cert and tls\.key go together/],
    [['--tls-implicit-port', '990'], /--tls-implicit-port: needs tls\.cert and tls\.key/],
    [['--tls-policy', 'sometimes'], /--tls-policy/],
  ] as const) {
    const child = runCli(['--root', dir, '--port', '0', ...args], dir);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    assert.equal(await exitOf(child), 2, err);
    assert.match(err, message);
  }
});
