/**
 * The defender's bookkeeping with a hand-moved clock: scores within a
 * window, bans that grow on repeat and end, allow and deny lists, bans by
 * hand. The same rules over real connections: test/integration/defender.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Defender, resolveDefenderSettings, type DefenderOptions } from '../../src/limits/defender.js';
import type { BanInfo, UnbanInfo } from '../../src/observability/events.js';

const MIN = 60_000;

function defender(options: DefenderOptions = {}) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const bans: BanInfo[] = [];
  const unbans: UnbanInfo[] = [];
  const d = new Defender(options, { now: () => now, onBan: (b) => bans.push(b), onUnban: (u) => unbans.push(u) });
  return {
    d,
    bans,
    unbans,
    advance: (ms: number) => (now += ms),
    failLogins: (address: string, n: number) => {
      let verdict = 'allowed';
      for (let i = 0; i < n; i++) verdict = d.report(address, 'login-failed');
      return verdict;
    },
  };
}

test('with the defaults, ten failed logins within ten minutes ban the address for 15 minutes; nine do not', () => {
  const { d, bans, failLogins } = defender();
  assert.equal(failLogins('198.51.100.7', 9), 'allowed');
  assert.equal(d.verdict('198.51.100.7'), 'allowed');
  assert.equal(failLogins('198.51.100.7', 1), 'banned');
  assert.equal(d.verdict('198.51.100.7'), 'banned');
  assert.equal(d.verdict('198.51.100.8'), 'allowed', 'a neighbour is not banned');
  assert.equal(bans.length, 1);
  assert.equal(bans[0]!.address, '198.51.100.7');
  assert.equal(bans[0]!.durationMs, 15 * MIN);
  assert.equal(bans[0]!.reason, '10 failed logins within 10 min');
  assert.equal(bans[0]!.manual, false);
  assert.equal(Date.parse(bans[0]!.expiresAt!) - Date.parse(bans[0]!.since), 15 * MIN);
  d.close();
});

test('offences older than the window no longer count', () => {
  const { d, advance, failLogins } = defender();
  // A person mistyping now and then: nine failures, then more after the window moved on.
  assert.equal(failLogins('198.51.100.7', 9), 'allowed');
  advance(10 * MIN + 1);
  assert.equal(failLogins('198.51.100.7', 9), 'allowed');
  d.close();
});

test('a ban ends on time, and each later ban lasts twice as long, up to the maximum', () => {
  const { d, advance, failLogins, bans, unbans } = defender({ maxBanMs: 50 * MIN });
  const lengths: number[] = [];
  for (let i = 0; i < 5; i++) {
    assert.equal(failLogins('2001:db8:1:2::5', 10), 'banned');
    const ban = bans.at(-1)!;
    lengths.push(ban.durationMs!);
    advance(ban.durationMs! - 1);
    assert.equal(d.verdict('2001:db8:1:2::5'), 'banned', 'still banned a moment before the end');
    advance(1);
    assert.equal(d.verdict('2001:db8:1:2::5'), 'allowed', 'free at the end');
  }
  assert.deepEqual(lengths, [15, 30, 50, 50, 50].map((m) => m * MIN));
  assert.equal(unbans.length, 5);
  assert.ok(unbans.every((u) => u.cause === 'expired'));
  // Clean for as long as the longest ban: a first offender again.
  advance(50 * MIN + 1);
  failLogins('2001:db8:1:2::5', 10);
  assert.equal(bans.at(-1)!.durationMs, 15 * MIN);
  d.close();
});

test('IPv6 addresses are scored and banned by their /64', () => {
  const { d, failLogins, bans } = defender();
  failLogins('2001:db8:1:2::1', 5);
  assert.equal(failLogins('2001:db8:1:2:ffff::9', 5), 'banned');
  assert.equal(bans[0]!.address, '2001:db8:1:2::/64');
  assert.equal(d.verdict('2001:db8:1:2:abcd::1'), 'banned');
  assert.equal(d.verdict('2001:db8:1:3::1'), 'allowed');
  assert.equal(d.verdict('::ffff:198.51.100.7'), 'allowed', 'IPv4-mapped addresses are their IPv4 address');
  d.close();
});

test('each offence kind has its own score, and a score of 0 ignores that kind', () => {
  const { d } = defender({ threshold: 10, scores: { protocolAbuse: 5, limitExceeded: 0 } });
  for (let i = 0; i < 50; i++) assert.equal(d.report('192.0.2.1', 'limit-exceeded'), 'allowed');
  assert.equal(d.report('192.0.2.1', 'protocol-abuse'), 'allowed');
  assert.equal(d.report('192.0.2.1', 'protocol-abuse'), 'banned');
  assert.match(d.list()[0]!.reason, /^2 protocol abuses within 10 min$/);
  d.close();
});

test('the allow list is never scored nor banned; the deny list always wins, even over the allow list', () => {
  const { d, failLogins, bans } = defender({ allowList: ['10.0.0.0/8', '192.0.2.9'], denyList: ['10.9.0.0/16', '2001:db8::/32'] });
  assert.equal(failLogins('10.1.2.3', 100), 'allowed');
  assert.equal(failLogins('192.0.2.9', 100), 'allowed');
  assert.equal(bans.length, 0);
  assert.equal(d.verdict('10.9.1.1'), 'denied');
  assert.equal(d.verdict('2001:db8:ffff::1'), 'denied');
  assert.equal(d.verdict('::ffff:10.9.1.1'), 'denied');
  assert.throws(() => d.ban('10.1.2.3'), /allowList/);
  d.close();
});

test('disabled: nothing is scored, but the deny list and bans by hand still apply', () => {
  const { d, failLogins } = defender({ enabled: false, denyList: ['192.0.2.0/24'] });
  assert.equal(failLogins('198.51.100.7', 100), 'allowed');
  assert.equal(d.verdict('192.0.2.5'), 'denied');
  d.ban('198.51.100.8');
  assert.equal(d.verdict('198.51.100.8'), 'banned');
  d.close();
});

test('a ban by hand lasts until removed or for its time; removing it forgets the score and past bans', () => {
  const { d, advance, failLogins, bans, unbans } = defender();
  const forever = d.ban('203.0.113.5', { reason: 'scanner' });
  assert.deepEqual({ ...forever, since: '' }, { address: '203.0.113.5', reason: 'scanner', manual: true, since: '', durationMs: null, expiresAt: null });
  d.ban('203.0.113.6', { durationMs: 1000 });
  assert.deepEqual(
    d.list().map((b) => b.address),
    ['203.0.113.6', '203.0.113.5'],
    'soonest end first',
  );
  advance(1000);
  assert.equal(d.verdict('203.0.113.6'), 'allowed');
  advance(365 * 24 * 60 * MIN);
  assert.equal(d.verdict('203.0.113.5'), 'banned');
  assert.equal(d.unban('203.0.113.5')?.address, '203.0.113.5');
  assert.equal(d.verdict('203.0.113.5'), 'allowed');
  assert.equal(d.unban('203.0.113.5'), null, 'nothing left to lift');
  assert.deepEqual(
    unbans.map((u) => [u.address, u.cause]),
    [
      ['203.0.113.6', 'expired'],
      ['203.0.113.5', 'removed'],
    ],
  );

  // Unban resets: the score so far and the growth.
  failLogins('198.51.100.1', 10);
  d.unban('198.51.100.1');
  failLogins('198.51.100.1', 9);
  assert.equal(d.verdict('198.51.100.1'), 'allowed');
  failLogins('198.51.100.1', 1);
  assert.equal(bans.at(-1)!.durationMs, 15 * MIN, 'not doubled after an unban');
  assert.throws(() => d.ban('not-an-address'), /not an IP address/);
  assert.throws(() => d.ban('192.0.2.1', { durationMs: 0 }), /at least 1/);
  assert.equal(d.ban('2001:db8:7:7::/64').address, '2001:db8:7:7::/64', 'a /64 as listed can be banned and removed');
  assert.ok(d.unban('2001:db8:7:7::/64'));
  d.close();
});

test('the unban event fires when a ban ends, without waiting for the address to come back', async () => {
  const unbans: UnbanInfo[] = [];
  const d = new Defender({ threshold: 1, banMs: 50, maxBanMs: 1000 }, { onUnban: (u) => unbans.push(u) });
  d.report('192.0.2.1', 'login-failed');
  d.ban('192.0.2.2', { durationMs: 80 });
  const deadline = Date.now() + 5000;
  while (unbans.length < 2 && Date.now() < deadline) await sleep(10);
  assert.deepEqual(unbans.map((u) => u.address).sort(), ['192.0.2.1', '192.0.2.2']);
  assert.equal(d.list().length, 0);
  d.close();
});

test('settings are checked and name the bad key', () => {
  assert.throws(() => resolveDefenderSettings({ threshold: 0 }), /defender.threshold: 0 is not a whole number of at least 1/);
  assert.throws(() => resolveDefenderSettings({ banMs: 10, maxBanMs: 5 }), /defender.maxBanMs/);
  assert.throws(() => resolveDefenderSettings({ banGrowth: 0.5 }), /defender.banGrowth/);
  assert.throws(() => resolveDefenderSettings({ denyList: ['10.0.0.0/33'] }), /defender.denyList: "10.0.0.0\/33"/);
  assert.throws(() => resolveDefenderSettings({ scores: { loginFailed: -1 } }), /defender.scores.loginFailed/);
  assert.equal(resolveDefenderSettings(false).enabled, false);
});

test('memory stays bounded under a flood of addresses, and bans by hand are kept', () => {
  const { d } = defender({ threshold: 1000 });
  d.ban('203.0.113.1');
  for (let i = 0; i < 120_000; i++) d.report(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'login-failed');
  assert.equal(d.trackedCount, 100_000);
  assert.equal(d.verdict('203.0.113.1'), 'banned');
  d.close();
});
