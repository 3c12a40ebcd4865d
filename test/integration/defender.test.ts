/**
 * The defender over real connections: the password guesser of issue 12 is
 * banned within its first connections while other addresses keep working;
 * bans grow and end; allow and deny lists; protocol abuse and connection
 * limits count too. Clients bind their own address in 127.0.0.0/8 (Linux
 * routes all of it to lo), so each test's "attacker" is its own address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type { BanInfo, UnbanInfo } from '../../src/observability/events.js';
import type { LogFn, Logger } from '../../src/observability/logger.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { canBindIpv6Loopback, PASSWORD, startServer, USER } from '../helpers/server.js';
import { testCertificate } from '../helpers/tls.js';

const SERVER = '127.0.0.1';

/** One connection of a guesser: the greeting's code, then the codes of up to `tries` wrong passwords. */
async function guess(port: number, from: string, tries: number, label: string): Promise<number[]> {
  const client = await RawClient.connect(port, SERVER, from);
  try {
    const codes = [(await client.read()).code];
    if (codes[0] !== 220) return codes;
    for (let i = 0; i < tries; i++) {
      const user = await client.command(`USER ${USER}`);
      if (user.code !== 331) return [...codes, user.code];
      const code = (await client.command(`PASS wrong-${label}-${i}`)).code;
      codes.push(code);
      if (code !== 530) break;
    }
    return codes;
  } finally {
    client.close();
  }
}

function recordingLogger(lines: Array<{ level: string; msg: string }>): Logger {
  const at =
    (level: string): LogFn =>
    (objOrMsg: object | string, msg?: string) =>
      lines.push({ level, msg: typeof objOrMsg === 'string' ? objOrMsg : (msg ?? '') });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

function record<T>(server: NodeJS.EventEmitter, event: string): T[] {
  const seen: T[] = [];
  server.on(event, (info: T) => seen.push(info));
  return seen;
}

test('the guesser of issue 12 (connections x 3 wrong passwords) is banned on its 4th connection; another address keeps working', async (t) => {
  // The defaults (10 failed logins in 10 minutes); only the failure delay is short.
  const logged: Array<{ level: string; msg: string }> = [];
  const { server, port } = await startServer(t, { logger: recordingLogger(logged) });
  const failed = record<unknown>(server, 'login-failed');
  const bans = record<BanInfo>(server, 'ban');
  const connections: number[][] = [];
  for (let i = 0; i < 5; i++) connections.push(await guess(port, '127.0.0.1', 3, String(i)));
  // 3 per connection: failures 1-9 on connections 1-3, the 10th (connection 4's first) bans.
  assert.deepEqual(connections, [
    [220, 530, 530, 421],
    [220, 530, 530, 421],
    [220, 530, 530, 421],
    [220, 421], // its first wrong password: 421, closed
    [421], // refused before the greeting
  ]);
  assert.equal(failed.length, 10);
  assert.equal(bans.length, 1);
  assert.deepEqual({ address: bans[0]!.address, reason: bans[0]!.reason, durationMs: bans[0]!.durationMs, manual: bans[0]!.manual }, {
    address: '127.0.0.1',
    reason: '10 failed logins within 10 min',
    durationMs: 900_000,
    manual: false,
  });
  // The right password does not help a banned address.
  const banned = await RawClient.connect(port, SERVER, '127.0.0.1');
  t.after(() => banned.close());
  const refused = await banned.read();
  assert.equal(refused.code, 421);
  assert.match(refused.text, /banned/);
  await banned.closed();
  // Logged once per ban, not once per refused connection.
  assert.deepEqual(
    logged.filter((l) => l.level !== 'debug' && /banned/.test(l.msg)),
    [{ level: 'warn', msg: 'address banned' }],
  );
  // Everyone else is served as before.
  const other = await RawClient.login(port, USER, PASSWORD, SERVER, '127.0.0.2');
  t.after(() => other.close());
  await other.command('PWD', 257);
});

test('32 guessing connections at once get one password try each, then every one is closed and new ones refused', async (t) => {
  // The numbers: 32 connections (maxConnectionsPerIp), 3 tries each, 1 s delay.
  const { server, port } = await startServer(t, { loginFailureDelayMs: 1000 });
  const failed = record<unknown>(server, 'login-failed');
  const results = await Promise.all(Array.from({ length: 32 }, (_, i) => guess(port, '127.0.0.3', 3, String(i))));
  // Without the defender: 96 passwords checked, and the next 32 connections would go on.
  assert.ok(failed.length >= 10 && failed.length <= 32, `${failed.length} passwords checked`);
  assert.ok(results.every((codes) => codes.length <= 3 && codes.at(-1) === 421), JSON.stringify(results));
  assert.ok(results.flat().filter((code) => code === 530).length <= 9, JSON.stringify(results));
  assert.deepEqual(await guess(port, '127.0.0.3', 3, 'late'), [421]);
});

test('bans grow on repeat and end on time, with an unban event', async (t) => {
  const { server, port } = await startServer(t, {
    maxLoginAttempts: 10,
    defender: { threshold: 2, scores: { loginFailed: 1 }, banMs: 1000, banGrowth: 3, maxBanMs: 60_000 },
  });
  const bans = record<BanInfo>(server, 'ban');
  const unbans = record<UnbanInfo>(server, 'unban');
  for (const expected of [1000, 3000]) {
    assert.deepEqual(await guess(port, '127.0.0.4', 3, 'x'), [220, 530, 421]);
    assert.equal(bans.at(-1)!.durationMs, expected);
    assert.deepEqual(await guess(port, '127.0.0.4', 1, 'y'), [421], 'refused while banned');
    const lifted = once(server, 'unban');
    const [info] = (await lifted) as [UnbanInfo];
    assert.equal(info.cause, 'expired');
    assert.equal(info.address, '127.0.0.4');
    // Expired, not early: the unban comes no sooner than the ban's end.
    assert.ok(Date.now() >= Date.parse(info.expiresAt!), `${new Date().toISOString()} < ${info.expiresAt}`);
    const back = await RawClient.login(port, USER, PASSWORD, SERVER, '127.0.0.4');
    back.close();
  }
  assert.equal(unbans.length, 2);
});

test('an allow-listed address is never banned; a deny-listed one is refused (421, or a close on implicit TLS)', async (t) => {
  const { cert, key } = testCertificate();
  const { server, port } = await startServer(t, {
    defender: { threshold: 2, scores: { loginFailed: 1 }, allowList: ['127.0.0.5', '127.0.6.0/24'], denyList: ['127.0.6.6'] },
    tls: { cert, key, implicitPort: 0, policy: 'optional' },
  });
  const bans = record<BanInfo>(server, 'ban');
  for (let i = 0; i < 5; i++) assert.deepEqual(await guess(port, '127.0.0.5', 3, String(i)), [220, 530, 530, 421]);
  assert.equal(bans.length, 0);
  const ok = await RawClient.login(port, USER, PASSWORD, SERVER, '127.0.0.5');
  ok.close();

  // Denied wins over allowed (127.0.6.6 is in both).
  const denied = await RawClient.connect(port, SERVER, '127.0.6.6');
  t.after(() => denied.close());
  const reply = await denied.read();
  assert.equal(reply.code, 421);
  await denied.closed();
  // Implicit TLS: closed without a word (a TLS client cannot read a plain 421).
  const tcp = net.connect({ port: server.implicitAddress()!.port, host: SERVER, localAddress: '127.0.6.6' });
  const secure = tls.connect({ socket: tcp, rejectUnauthorized: false });
  t.after(() => secure.destroy());
  let handshake = false;
  secure.on('secureConnect', () => (handshake = true));
  secure.on('error', () => {});
  await new Promise((resolve) => secure.on('close', resolve));
  assert.equal(handshake, false);
  // The rest of the allowed range is served.
  const neighbour = await RawClient.login(port, USER, PASSWORD, SERVER, '127.0.6.7');
  neighbour.close();
});

test('protocol abuse (over-long lines) and connections over the per-address limit add to the score', async (t) => {
  const { server, port } = await startServer(t, {
    maxCommandBytes: 512,
    maxConnectionsPerIp: 2,
    defender: { threshold: 10, scores: { protocolAbuse: 5, limitExceeded: 5 } },
  });
  const bans = record<BanInfo>(server, 'ban');
  const abuser = await RawClient.connect(port, SERVER, '127.0.0.7');
  t.after(() => abuser.close());
  await abuser.expect(220);
  abuser.send('NOOP ' + 'x'.repeat(600));
  await abuser.expect(500);
  abuser.send('NOOP ' + 'x'.repeat(600));
  await abuser.expect(500);
  assert.equal((await abuser.read()).code, 421, 'banned by its second over-long line: closed');
  await abuser.closed();
  assert.match(bans[0]!.reason, /^2 protocol abuses within 10 min$/);

  const held = await Promise.all([1, 2].map(() => RawClient.connect(port, SERVER, '127.0.0.8')));
  t.after(() => held.forEach((c) => c.close()));
  for (const c of held) await c.expect(220);
  for (let i = 0; i < 2; i++) {
    const extra = await RawClient.connect(port, SERVER, '127.0.0.8');
    assert.match((await extra.expect(421)).text, /Too many connections/);
    extra.close();
  }
  assert.equal(bans.at(-1)!.address, '127.0.0.8');
  assert.match(bans.at(-1)!.reason, /^2 connections over a limit within 10 min$/);
  held.forEach((c) => c.close());
  const after = await RawClient.connect(port, SERVER, '127.0.0.8');
  t.after(() => after.close());
  assert.match((await after.expect(421)).text, /banned/);
});

test('over IPv6 an address is banned by its /64', async (t) => {
  if (!(await canBindIpv6Loopback())) {
    t.skip('this machine cannot listen on ::1');
    return;
  }
  const { server, port } = await startServer(t, { host: '::1', defender: { threshold: 2, scores: { loginFailed: 1 } } });
  const bans = record<BanInfo>(server, 'ban');
  const client = await RawClient.connect(port, '::1');
  t.after(() => client.close());
  await client.expect(220);
  await client.command(`USER ${USER}`, 331);
  await client.command('PASS wrong-1', 530);
  await client.command(`USER ${USER}`, 331);
  assert.match((await client.command('PASS wrong-2', 421)).text, /banned/);
  assert.equal(bans[0]!.address, '::/64');
  const next = await RawClient.connect(port, '::1');
  t.after(() => next.close());
  assert.equal((await next.read()).code, 421);
});
