/**
 * PROXY protocol (issue 12) over real sockets. Loopback has many addresses,
 * so each party gets its own: the "balancer" connects from 127.0.0.3 (the
 * only trusted source), clients from 127.0.0.2 and 127.0.0.4, and a direct,
 * untrusted connection comes from 127.0.0.1. Whatever the server reports
 * (events, STAT, limits, data-connection checks) must name the client, never
 * the balancer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { Client } from 'basic-ftp';
import { pino } from 'pino';
import { createServer } from '../../src/index.js';
import type { ServerEvents } from '../../src/observability/events.js';
import { startCli, type RunningCli } from '../helpers/cli.js';
import { RawClient, readAll } from '../helpers/ftp-raw.js';
import { hasHaproxy, startHaproxy } from '../helpers/haproxy.js';
import { proxyV1, proxyV2 } from '../helpers/proxy-header.js';
import { PASSWORD, USER, startServer, type Cleanup, type TestServer, type TestServerOptions } from '../helpers/server.js';
import { collector } from '../helpers/streams.js';
import { certificateFiles, testCertificate } from '../helpers/tls.js';

const BALANCER = '127.0.0.3';
const CLIENT = '127.0.0.2';
const OTHER_CLIENT = '127.0.0.4';
const HEADER_TIMEOUT_MS = 400;

interface Fixture extends TestServer {
  logs: () => string[];
  connects: Array<ServerEvents['connect'][0]>;
}

async function startProxied(t: Cleanup, options: TestServerOptions = {}): Promise<Fixture> {
  const { sink, bytes } = collector();
  const srv = await startServer(t, {
    logger: pino({ level: 'debug' }, sink),
    proxyProtocol: { trustedSources: [`${BALANCER}/32`], headerTimeoutMs: HEADER_TIMEOUT_MS },
    ...options,
  });
  const connects: Fixture['connects'] = [];
  srv.server.on('connect', (e) => connects.push(e));
  const logs = () => bytes().toString().split('\n').filter(Boolean);
  await writeFile(path.join(srv.root, 'hello.txt'), 'hello through the balancer');
  return { ...srv, logs, connects };
}

/** A TCP connection from `from` to the server, `first` written at once (a header, and maybe more). */
async function connectFrom(t: Cleanup, port: number, from: string, first?: Buffer): Promise<RawClient> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
  await once(socket, 'connect');
  const client = RawClient.over(socket);
  t.after(async () => client.close());
  if (first) socket.write(first);
  return client;
}

/** What the balancer would send for CLIENT:port connecting to the server's port. */
const headerFor = (client: string, clientPort: number, version: 1 | 2, serverPort = 21): Buffer =>
  version === 1 ? proxyV1(client, '198.51.100.1', clientPort, serverPort) : proxyV2({ source: client, destination: '198.51.100.1', sourcePort: clientPort, destinationPort: serverPort });

async function login(client: RawClient): Promise<void> {
  await client.expect(220);
  await client.command(`USER ${USER}`, 331);
  await client.command(`PASS ${PASSWORD}`, 230);
}

const epsvPort = async (client: RawClient): Promise<number> => Number(/\|(\d+)\|/.exec((await client.command('EPSV', 229)).text)![1]);

/** RETR hello.txt over a passive data connection to `port` opened from `from`. */
async function retrieveHello(client: RawClient, port: number, from: string): Promise<string> {
  const data = net.connect({ port, host: '127.0.0.1', localAddress: from });
  await once(data, 'connect');
  client.send('RETR hello.txt');
  await client.expect(150);
  const body = (await readAll(data)).toString();
  await client.expect(226);
  return body;
}

/**
 * A relay in front of `port` that behaves like HAProxy: it connects from
 * BALANCER, and the header and the client's first bytes (a TLS ClientHello)
 * leave in one write. The header tells the truth (the client connects from
 * 127.0.0.1), so data connections pass the check.
 */
async function startRelay(t: Cleanup, port: number): Promise<number> {
  const open = new Set<net.Socket>();
  const relay = net.createServer((downstream) => {
    const upstream = net.connect({ port, host: '127.0.0.1', localAddress: BALANCER });
    open.add(downstream).add(upstream);
    downstream.once('data', (first: Buffer) => {
      upstream.write(Buffer.concat([headerFor('127.0.0.1', downstream.remotePort!, 2, 990), first]));
      downstream.pipe(upstream).pipe(downstream);
    });
    downstream.on('error', () => upstream.destroy());
    upstream.on('error', () => downstream.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    relay.close();
    for (const socket of open) socket.destroy();
  });
  return (relay.address() as net.AddressInfo).port;
}

/** Run a command to its end (bounded by the command's own timeout, and by the 30 s kill here). */
async function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Wait (bounded) until `check` holds. */
async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('PROXY protocol from a trusted balancer', () => {
  for (const version of [1, 2] as const) {
    test(`v${version}: the session, its events and STAT name the client from the header`, async (t) => {
      const fx = await startProxied(t);
      const client = await connectFrom(t, fx.port, BALANCER, headerFor(CLIENT, 40001, version));
      await login(client);
      const stat = await client.command('STAT', 211);
      assert.ok(stat.lines.includes(` Connected from ${CLIENT}`), stat.lines.join('\n'));
      assert.deepEqual(
        fx.connects.map((e) => [e.remoteAddress, e.remotePort]),
        [[CLIENT, 40001]],
      );
      const loginLine = fx.logs().find((line) => line.includes('"msg":"login"'));
      assert.ok(loginLine?.includes(`"remoteAddress":"${CLIENT}"`), `login logged with the client's address: ${loginLine}`);
      assert.ok(fx.logs().some((line) => line.includes('"msg":"PROXY protocol header"') && line.includes(`"via":"${BALANCER}"`)));
    });
  }

  test('commands sent in the same segment as the header are read, in order', async (t) => {
    const fx = await startProxied(t);
    const client = await connectFrom(t, fx.port, BALANCER, Buffer.concat([headerFor(CLIENT, 40002, 2), Buffer.from(`USER ${USER}\r\nPASS ${PASSWORD}\r\nPWD\r\n`)]));
    await client.expect(220);
    await client.expect(331);
    await client.expect(230);
    await client.expect(257);
  });

  test('a v2 LOCAL header (a health check) is served with the balancer\'s own address', async (t) => {
    const fx = await startProxied(t);
    const client = await connectFrom(t, fx.port, BALANCER, proxyV2({ command: 0, familyByte: 0, body: Buffer.alloc(0) }));
    await client.expect(220);
    assert.equal(fx.connects[0]?.remoteAddress, BALANCER);
  });

  test('passive data connections are accepted from the client\'s address and refused from the balancer\'s', async (t) => {
    const fx = await startProxied(t);
    const client = await connectFrom(t, fx.port, BALANCER, headerFor(CLIENT, 40003, 2));
    await login(client);
    await client.command('TYPE I', 200);
    const port = await epsvPort(client);
    // The balancer's address is not the client's: this connection is dropped.
    const intruder = net.connect({ port, host: '127.0.0.1', localAddress: BALANCER });
    intruder.on('error', () => {});
    await once(intruder, 'close');
    assert.equal(await retrieveHello(client, port, CLIENT), 'hello through the balancer');
  });

  test('active mode connects to the client\'s address only, never the balancer\'s', async (t) => {
    const fx = await startProxied(t);
    const client = await connectFrom(t, fx.port, BALANCER, headerFor(CLIENT, 40004, 1));
    await login(client);
    await client.command(`EPRT |1|${BALANCER}|40000|`, 501);
    const listener = net.createServer();
    await new Promise<void>((resolve) => listener.listen(0, CLIENT, resolve));
    t.after(() => new Promise((resolve) => listener.close(resolve)));
    const accepted = once(listener, 'connection');
    await client.command(`EPRT |1|${CLIENT}|${(listener.address() as net.AddressInfo).port}|`, 200);
    client.send('RETR hello.txt');
    const [socket] = (await accepted) as [net.Socket];
    await client.expect(150);
    assert.equal((await readAll(socket)).toString(), 'hello through the balancer');
    await client.expect(226);
  });

  test('the per-IP limit counts clients behind the balancer, not the balancer', async (t) => {
    const fx = await startProxied(t, { maxConnectionsPerIp: 1 });
    const first = await connectFrom(t, fx.port, BALANCER, headerFor(CLIENT, 40005, 2));
    await first.expect(220);
    const other = await connectFrom(t, fx.port, BALANCER, headerFor(OTHER_CLIENT, 40006, 2));
    await other.expect(220);
    const again = await connectFrom(t, fx.port, BALANCER, headerFor(CLIENT, 40007, 2));
    assert.equal((await again.read()).code, 421);
    await again.closed();
  });

  test('implicit FTPS behind a header, the TLS ClientHello in the same segment', async (t) => {
    const { cert, key } = testCertificate();
    const fx = await startProxied(t, { tls: { cert, key, implicitPort: 0 } });
    const ftp = new Client(10_000);
    t.after(() => ftp.close());
    await ftp.access({ host: '127.0.0.1', port: await startRelay(t, fx.server.implicitAddress()!.port), user: USER, password: PASSWORD, secure: 'implicit', secureOptions: { ca: cert } });
    assert.ok(ftp.ftp.socket instanceof tls.TLSSocket);
    const { sink, bytes } = collector();
    await ftp.downloadTo(sink, 'hello.txt');
    assert.equal(bytes().toString(), 'hello through the balancer');
    assert.deepEqual(
      fx.connects.map((e) => e.remoteAddress),
      ['127.0.0.1'],
    );
    // The ClientHello came with the header, and still reached TLS.
    assert.ok(fx.logs().some((line) => line.includes('"msg":"PROXY protocol header"') && /"headBytes":[1-9]/.test(line)));
  });
});

describe('PROXY protocol refusals', () => {
  test('a connection from an untrusted address gets 421 and is closed, and the refusal is logged', async (t) => {
    const fx = await startProxied(t);
    const client = await connectFrom(t, fx.port, '127.0.0.1');
    const reply = await client.read();
    assert.equal(reply.code, 421);
    assert.match(reply.text, /load balancer/);
    await client.closed();
    assert.equal(fx.connects.length, 0, 'no session was started');
    assert.ok(fx.logs().some((line) => line.includes('"level":40') && line.includes('trustedSources') && line.includes('"remoteAddress":"127.0.0.1"')));
  });

  test('a header from an untrusted address is not believed: the connection is refused', async (t) => {
    const fx = await startProxied(t);
    const client = await connectFrom(t, fx.port, CLIENT, headerFor('192.0.2.1', 1, 1));
    assert.equal((await client.read()).code, 421);
    await client.closed();
    assert.equal(fx.connects.length, 0);
  });

  test('an untrusted implicit-FTPS connection is closed without a plaintext reply', async (t) => {
    const { cert, key } = testCertificate();
    const fx = await startProxied(t, { tls: { cert, key, implicitPort: 0 } });
    const socket = net.connect({ port: fx.server.implicitAddress()!.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    await once(socket, 'close');
    assert.equal(Buffer.concat(received).length, 0);
  });

  const broken: Array<[string, Buffer]> = [
    ['a plain FTP command instead of a header', Buffer.from(`USER ${USER}\r\n`)],
    ['a v1 line with a bad address', Buffer.from('PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n')],
    ['a v2 header of an unassigned version', proxyV2({ version: 3 })],
    ['a v1 line that never ends', Buffer.from(`PROXY TCP4 ${'9'.repeat(150)}`)],
  ];
  for (const [name, bytes] of broken) {
    test(`a trusted source sending ${name} is closed without a reply, and logged`, async (t) => {
      const fx = await startProxied(t);
      const client = await connectFrom(t, fx.port, BALANCER, bytes);
      await client.closed();
      await assert.rejects(client.read(50), /no reply/);
      assert.equal(fx.connects.length, 0);
      assert.ok(fx.logs().some((line) => line.includes('no valid PROXY protocol header') && line.includes(`"remoteAddress":"${BALANCER}"`)));
    });
  }

  test('a slow header (half of it, then silence) and no header at all are closed after headerTimeoutMs', async (t) => {
    const fx = await startProxied(t);
    const header = headerFor(CLIENT, 40008, 2);
    const started = Date.now();
    const slow = await connectFrom(t, fx.port, BALANCER, header.subarray(0, 10));
    const silent = await connectFrom(t, fx.port, BALANCER);
    await Promise.all([slow.closed(5000), silent.closed(5000)]);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= HEADER_TIMEOUT_MS - 50, `closed after ${elapsed} ms, not before the ${HEADER_TIMEOUT_MS} ms timeout`);
    assert.equal(fx.connects.length, 0);
    assert.ok(fx.logs().some((line) => line.includes(`within ${HEADER_TIMEOUT_MS} ms (10 bytes received)`)));
    assert.ok(fx.logs().some((line) => line.includes(`within ${HEADER_TIMEOUT_MS} ms (0 bytes received)`)));
  });

  test('no more headers are awaited at once than limits.maxConnections', async (t) => {
    const fx = await startProxied(t, { maxConnections: 2, proxyProtocol: { trustedSources: [BALANCER], headerTimeoutMs: 10_000 } });
    const silent = [await connectFrom(t, fx.port, BALANCER), await connectFrom(t, fx.port, BALANCER)];
    const third = await connectFrom(t, fx.port, BALANCER);
    await third.closed(2000); // at once, not after the 10 s header timeout
    assert.ok(silent.every((c) => !c.isClosed));
    assert.ok(fx.logs().some((line) => line.includes('too many PROXY protocol headers awaited at once')));
  });

  test('the library refuses a bad source or timeout, naming the option', () => {
    const authenticator = { authenticate: async () => null };
    assert.throws(() => createServer({ authenticator, proxyProtocol: { trustedSources: ['10.0.0.0/33'] } }), /^TypeError: proxyProtocol\.trustedSources: "10\.0\.0\.0\/33" is not an IP address or CIDR range/);
    assert.throws(() => createServer({ authenticator, proxyProtocol: { trustedSources: ['balancer.local'] } }), /proxyProtocol\.trustedSources: "balancer\.local"/);
    assert.throws(() => createServer({ authenticator, proxyProtocol: { trustedSources: [BALANCER], headerTimeoutMs: 0 } }), /proxyProtocol\.headerTimeoutMs/);
  });

  test('reconfigure changes who is trusted for the next connections', async (t) => {
    const fx = await startProxied(t);
    const { authenticator } = fx.server.options;
    fx.server.reconfigure({ authenticator, proxyProtocol: { trustedSources: [OTHER_CLIENT] } });
    const formerBalancer = await connectFrom(t, fx.port, BALANCER, headerFor(CLIENT, 40031, 2));
    assert.equal((await formerBalancer.read()).code, 421);
    const newBalancer = await connectFrom(t, fx.port, OTHER_CLIENT, headerFor(CLIENT, 40032, 2));
    await newBalancer.expect(220);
    fx.server.reconfigure({ authenticator });
    const direct = await connectFrom(t, fx.port, '127.0.0.1');
    await direct.expect(220);
    assert.deepEqual(
      fx.connects.map((e) => e.remoteAddress),
      [CLIENT, '127.0.0.1'],
    );
  });

  test('with PROXY protocol off, a header is just a bad command', async (t) => {
    const srv = await startServer(t);
    const client = await connectFrom(t, srv.port, CLIENT, headerFor('192.0.2.1', 1, 1));
    await client.expect(220);
    assert.equal((await client.read()).code, 500);
    const stat = await client.command('STAT', 211);
    assert.ok(stat.lines.includes(` Connected from ${CLIENT}`));
  });
});

describe('PROXY protocol through HAProxy', () => {
  function needsHaproxy(t: TestContext): boolean {
    if (hasHaproxy()) return true;
    assert.ok(!process.env.CI, 'haproxy is not installed, and .ci/run should have installed it');
    t.skip('haproxy is not installed (.ci/run installs it: apt-get install haproxy)');
    return false;
  }

  for (const version of [1, 2] as const) {
    test(`HAProxy with ${version === 1 ? 'send-proxy' : 'send-proxy-v2'}: curl uploads and downloads, Ferry sees curl's address`, async (t) => {
      if (!needsHaproxy(t)) return;
      const fx = await startProxied(t);
      const balancer = await startHaproxy(t, { backendPort: fx.port, version, source: BALANCER });
      const url = `ftp://127.0.0.1:${balancer.port}`;
      // Asynchronous: Ferry runs in this very process.
      const curl = async (...args: string[]): Promise<string> => {
        const { code, stdout, stderr } = await run('curl', ['-sS', '--max-time', '20', '--interface', CLIENT, '--user', `${USER}:${PASSWORD}`, ...args]);
        assert.equal(code, 0, `curl ${args.join(' ')}: ${stderr}\nhaproxy: ${balancer.output()}\nferry: ${fx.logs().join('\n')}`);
        return stdout;
      };
      assert.equal(await curl(`${url}/hello.txt`), 'hello through the balancer');
      const local = path.join(fx.root, 'hello.txt');
      await curl('-T', local, `${url}/copy.txt`);
      assert.equal(await readFile(path.join(fx.root, 'copy.txt'), 'utf8'), 'hello through the balancer');
      assert.equal(await curl('--ftp-port', CLIENT, `${url}/hello.txt`), 'hello through the balancer'); // active mode: Ferry connects back to curl's own address
      await until(() => fx.connects.length === 3, 'three sessions');
      assert.deepEqual(new Set(fx.connects.map((e) => e.remoteAddress)), new Set([CLIENT]));
      // The balancer itself may not talk FTP to Ferry without a header: the listener is the balancer's.
      const direct = await connectFrom(t, fx.port, '127.0.0.1');
      assert.equal((await direct.read()).code, 421);
    });
  }
});

describe('PROXY protocol in cluster mode', () => {
  /** `ferry serve --workers 2` trusting BALANCER, serving a folder with hello.txt to u:pw. */
  async function startCluster(t: Cleanup, extra: string[] = []): Promise<RunningCli> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-proxy-cluster-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(path.join(dir, 'files'));
    await writeFile(path.join(dir, 'files', 'hello.txt'), 'hello through the balancer');
    await writeFile(
      path.join(dir, 'ferry.yaml'),
      ['storage:', '  root: files', 'proxyProtocol:', `  trustedSources: [${BALANCER}]`, `  headerTimeoutMs: ${HEADER_TIMEOUT_MS}`, 'logging:', '  level: debug', ''].join('\n'),
    );
    const args = ['serve', '--config', 'ferry.yaml', '--host', '127.0.0.1', '--port', '0', '--user', 'u:pw', '--workers', '2', ...extra];
    return startCli(t, args, dir);
  }

  test('the primary reads the header; each worker gets the client\'s address and the commands sent with the header', async (t) => {
    const cluster = await startCluster(t);
    const clients = await Promise.all(
      [40011, 40012, 40013, 40014].map((port) => connectFrom(t, cluster.port, BALANCER, Buffer.concat([headerFor(CLIENT, port, 2), Buffer.from('USER u\r\nPASS pw\r\nSTAT\r\n')]))),
    );
    for (const client of clients) {
      await client.expect(220);
      await client.expect(331);
      await client.expect(230);
      const stat = await client.expect(211);
      assert.ok(stat.lines.includes(` Connected from ${CLIENT}`), stat.lines.join('\n'));
      await client.command('TYPE I', 200);
      assert.equal(await retrieveHello(client, await epsvPort(client), CLIENT), 'hello through the balancer');
    }
    const logins = [...cluster.output().matchAll(/^.*"msg":"login".*$/gm)].map((m) => m[0]);
    assert.equal(logins.length, 4);
    assert.ok(logins.every((line) => line.includes(`"remoteAddress":"${CLIENT}"`)), logins.join('\n'));
    assert.deepEqual(new Set(logins.map((line) => /"worker":(\d+)/.exec(line)?.[1])), new Set(['0', '1']));
  });

  test('implicit FTPS through the primary: the ClientHello read with the header reaches the worker\'s TLS', async (t) => {
    const { cert, key } = await certificateFiles(t);
    const cluster = await startCluster(t, ['--tls-cert', cert, '--tls-key', key, '--tls-implicit-port', '0']);
    const implicitPort = Number(/implicit TLS on port (\d+)/.exec(cluster.output())![1]);
    const ftp = new Client(10_000);
    t.after(() => ftp.close());
    await ftp.access({ host: '127.0.0.1', port: await startRelay(t, implicitPort), user: 'u', password: 'pw', secure: 'implicit', secureOptions: { ca: testCertificate().cert } });
    const { sink, bytes } = collector();
    await ftp.downloadTo(sink, 'hello.txt');
    assert.equal(bytes().toString(), 'hello through the balancer');
    assert.match(cluster.output(), /"headBytes":[1-9]\d*[^\n]*"msg":"PROXY protocol header"/);
  });

  test('the cluster refuses untrusted sources and counts the per-IP limit by the client behind the balancer', async (t) => {
    const cluster = await startCluster(t, ['--max-connections-per-ip', '1']);
    const direct = await connectFrom(t, cluster.port, '127.0.0.1');
    assert.equal((await direct.read()).code, 421);
    const first = await connectFrom(t, cluster.port, BALANCER, headerFor(CLIENT, 40021, 1));
    await first.expect(220);
    const other = await connectFrom(t, cluster.port, BALANCER, headerFor(OTHER_CLIENT, 40022, 1));
    await other.expect(220);
    const again = await connectFrom(t, cluster.port, BALANCER, headerFor(CLIENT, 40023, 1));
    assert.equal((await again.read()).code, 421);
    const garbage = await connectFrom(t, cluster.port, BALANCER, Buffer.from('USER u\r\n'));
    await garbage.closed();
    await until(() => /no valid PROXY protocol header from a trusted source/.test(cluster.output()), 'the primary to log the bad header');
  });
});
