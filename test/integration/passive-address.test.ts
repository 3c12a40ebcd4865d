/**
 * masqueradeAddress over real connections: clients from different source
 * addresses (Linux routes all of 127.0.0.0/8 to loopback, so binding the
 * client's local address makes it another network), a host name looked up
 * at PASV time, the connected address, IPv6 control connections, and, in a
 * private network namespace with its own DNS server, a name that moves, a
 * resolver that stops answering and a name that does not exist.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { RawClient } from '../helpers/ftp-raw.js';
import { canBindIpv6Loopback, PASSWORD, startServer, USER, type Cleanup } from '../helpers/server.js';

/** curl from `source` with PASV forced (-v trace on stderr); never rejects on a non-zero exit. */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const all = ['-sS', '-v', '--disable-epsv', '--max-time', '10', '--connect-timeout', '5', ...args];
  return new Promise((resolve, reject) => {
    execFile('curl', all, { timeout: 15_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(new Error(`curl did not run to completion (${err.message}):\n${stderr}`));
      else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/** The address in a 227 reply's text. */
function announced(text: string): string {
  const match = /227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),\d+,\d+\)/.exec(text);
  assert.ok(match, `no 227 reply in:\n${text}`);
  return match.slice(1, 5).join('.');
}

async function pasvFrom(port: number, host: string, source: string): Promise<string> {
  const client = await RawClient.login(port, USER, PASSWORD, host, source);
  try {
    return announced((await client.command('PASV', 227)).lines.join('\n'));
  } finally {
    client.close();
  }
}

async function serverWithFile(t: Cleanup, options: Parameters<typeof startServer>[1]) {
  const srv = await startServer(t, options);
  await writeFile(path.join(srv.root, 'hello.txt'), 'hello from ferry');
  return srv;
}

test('clients from different networks are announced different PASV addresses; no matching rule means the connected address', async (t) => {
  // The server listens on 127.0.0.5, so "connected" (127.0.0.5) differs from every literal.
  const srv = await serverWithFile(t, {
    host: '127.0.0.5',
    masqueradeAddress: [
      { from: '127.0.0.2', announce: '198.51.100.2' },
      { from: ['127.0.0.3/32', '10.0.0.0/8'], announce: 'connected' },
      { from: '127.0.0.0/30', announce: '203.0.113.7' },
    ],
  });
  const url = `ftp://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.5:${srv.port}/hello.txt`;
  // curl ignores the PASV address by default (it reconnects to the control host), so these
  // downloads work while the trace shows what each client was told.
  const fromOne = await curl(['--interface', '127.0.0.1', url]);
  assert.equal(fromOne.code, 0, fromOne.stderr);
  assert.equal(fromOne.stdout, 'hello from ferry');
  assert.equal(announced(fromOne.stderr), '203.0.113.7');
  const fromTwo = await curl(['--interface', '127.0.0.2', url]);
  assert.equal(fromTwo.code, 0, fromTwo.stderr);
  assert.equal(announced(fromTwo.stderr), '198.51.100.2');
  // Here curl is told to use the announced address: the connected one works end to end.
  const fromThree = await curl(['--interface', '127.0.0.3', '--no-ftp-skip-pasv-ip', url]);
  assert.equal(fromThree.code, 0, fromThree.stderr);
  assert.equal(fromThree.stdout, 'hello from ferry');
  assert.equal(announced(fromThree.stderr), '127.0.0.5');
  // 127.0.0.9 matches no rule.
  assert.equal(await pasvFrom(srv.port, '127.0.0.5', '127.0.0.9'), '127.0.0.5');
});

test('a host name is looked up when PASV is sent (localhost, from the system resolver)', async (t) => {
  const srv = await startServer(t, { host: '127.0.0.5', masqueradeAddress: 'localhost' });
  assert.equal(await pasvFrom(srv.port, '127.0.0.5', '127.0.0.1'), '127.0.0.1');
});

test('without masqueradeAddress PASV announces the address the client connected to', async (t) => {
  const srv = await startServer(t, { host: '127.0.0.6' });
  assert.equal(await pasvFrom(srv.port, '127.0.0.6', '127.0.0.2'), '127.0.0.6');
});

test('a reload (reconfigure) changes what the next PASV announces', async (t) => {
  const srv = await startServer(t, { host: '127.0.0.5', masqueradeAddress: '203.0.113.7' });
  assert.equal(await pasvFrom(srv.port, '127.0.0.5', '127.0.0.1'), '203.0.113.7');
  const { authenticator } = srv.server.options;
  srv.server.reconfigure({ authenticator, host: '127.0.0.5', port: 0, masqueradeAddress: [{ from: '127.0.0.1', announce: '198.51.100.1' }] });
  assert.equal(await pasvFrom(srv.port, '127.0.0.5', '127.0.0.1'), '198.51.100.1');
  assert.equal(await pasvFrom(srv.port, '127.0.0.5', '127.0.0.2'), '127.0.0.5');
  assert.throws(() => srv.server.reconfigure({ authenticator, masqueradeAddress: [{ from: '127.0.0.1/40', announce: 'connected' }] }), /masqueradeAddress\[0\]\.from: "127\.0\.0\.1\/40" is not/);
});

test('over IPv6, PASV answers 425 whatever masqueradeAddress says, and EPSV works', async (t) => {
  if (!(await canBindIpv6Loopback())) return t.skip('this machine cannot listen on ::1');
  const srv = await startServer(t, { host: '::1', masqueradeAddress: [{ from: '::1', announce: '203.0.113.7' }] });
  const client = await RawClient.login(srv.port, USER, PASSWORD, '::1');
  t.after(() => client.close());
  const reply = await client.command('PASV', 425);
  assert.match(reply.text, /use EPSV/);
  await client.command('EPSV', 229);
});

/** `ip` from iproute2, or busybox's. */
const ipCommand = existsSync('/usr/sbin/ip') || existsSync('/sbin/ip') ? ['ip'] : existsSync('/usr/bin/busybox') ? ['busybox', 'ip'] : null;
const namespaces = process.getuid?.() !== 0 ? 'needs root (a private network namespace)' : !ipCommand ? 'needs ip (iproute2 or busybox)' : false;

test(
  'dynamic DNS: a moved name is followed after the cache time, a silent resolver costs one timeout and keeps the last address, a missing name gives the connected address',
  { skip: namespaces, timeout: 60_000 },
  async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-dns-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // timeout:5 makes the system resolver wait longer than Ferry's 2 s for a silent server.
    const resolv = path.join(dir, 'resolv.conf');
    await writeFile(resolv, 'nameserver 127.0.0.1\noptions timeout:5 attempts:1\n');
    const script = path.resolve('test/helpers/passive-dns-scenario.ts');
    const inside = `${ipCommand!.join(' ')} link set lo up && mount --bind "$1" /etc/resolv.conf && exec "$2" --import tsx "$3"`;
    const child = spawn('unshare', ['--net', '--mount', '--', 'sh', '-c', inside, 'sh', resolv, process.execPath, script], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => void child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, `scenario failed:\n${stderr}\n${stdout}`);
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    // First answers: dyn.test and stale.test resolve; gone.test (NXDOMAIN) falls back to the connected address.
    assert.equal(result.first.dyn.address, '198.51.100.7');
    assert.equal(result.first.stale.address, '198.51.100.9');
    assert.equal(result.first.gone.address, '127.0.0.1');
    assert.ok(result.first.gone.ms < 2000, `NXDOMAIN took ${result.first.gone.ms} ms`);
    // The name moved at once, but the cached answer holds until it expires, without a query.
    assert.equal(result.cached.address, '198.51.100.7');
    assert.equal(result.queriesBeforeExpiry['dyn.test'], 1);
    assert.equal(result.moved.address, '198.51.100.8');
    // A resolver that stopped answering: Ferry waits its 2 s, not the resolver's 5 s, and keeps the last address.
    assert.equal(result.stale.address, '198.51.100.9');
    assert.ok(result.stale.ms >= 1900 && result.stale.ms < 4500, `a silent resolver held PASV ${result.stale.ms} ms`);
    assert.equal(result.staleStillServes, 200);
    assert.equal(result.warnings.length, 2, result.warnings.join('\n'));
    assert.match(result.warnings[0], /looking up gone\.test failed; PASV announces the address the client connected to/);
    assert.match(result.warnings[1], /looking up stale\.test failed; PASV announces its last known address/);
  },
);
