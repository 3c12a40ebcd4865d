/**
 * masqueradeAddress rules: validation messages, matching by client network,
 * and the host name cache (timeouts, fallbacks, one lookup at a time). The
 * lookup is a function the tests hand in where they need a resolver that
 * fails or never answers; `localhost` goes through the system's resolver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseTarget, compilePassiveAddress, PassiveAddress, type Lookup, type PassiveAddressSetting } from '../../src/data/passive-address.js';
import type { Logger } from '../../src/observability/logger.js';

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const noop = () => {};
  const logger = {
    warnings,
    debug: noop,
    info: noop,
    error: noop,
    warn: (obj: object | string, msg?: string) => warnings.push(typeof obj === 'string' ? obj : (msg ?? '')),
    child: () => logger,
  };
  return logger;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('compilePassiveAddress', () => {
  const refused: Array<[unknown, RegExp]> = [
    ['203.0.113.300', /^masqueradeAddress: "203\.0\.113\.300" is not an IPv4 address, a host name, or connected/],
    ['::1', /^masqueradeAddress: "::1" is not an IPv4 address.*PASV can only announce IPv4/],
    ['not a name', /^masqueradeAddress: "not a name" is not/],
    [[{ announce: '10.0.0.5', from: '10.0.0.0/33' }], /^masqueradeAddress\[0\]\.from: "10\.0\.0\.0\/33" is not an IP address or CIDR range/],
    [[{ announce: 'connected' }, { announce: '10.0.0.5', from: ['10.0.0.0/8', '10.1/16'] }], /^masqueradeAddress\[1\]\.from\[1\]: "10\.1\/16" is not/],
    [[{ announce: '10.0.0.5', from: [] }], /^masqueradeAddress\[0\]\.from: expected an address or CIDR range, or a non-empty list/],
    [[{ from: '10.0.0.0/8' }], /^masqueradeAddress\[0\]\.announce: undefined is not/],
    [[{ announce: 'fe80::1' }], /^masqueradeAddress\[0\]\.announce: "fe80::1" is not/],
    [[null], /^masqueradeAddress\[0\]: expected a rule/],
    [42, /^masqueradeAddress: expected/],
  ];
  for (const [setting, message] of refused) {
    it(`refuses ${JSON.stringify(setting)}, naming the rule and field`, () => {
      assert.throws(() => compilePassiveAddress(setting as PassiveAddressSetting), (err: Error) => err instanceof TypeError && message.test(err.message));
    });
  }

  it('accepts addresses, host names, the connected keyword, single ranges and lists', () => {
    for (const setting of ['203.0.113.7', 'ftp.example.com', 'localhost', 'connected', [{ from: '2001:db8::/32', announce: 'connected' }, { from: ['10.0.0.0/8', '192.168.1.7'], announce: 'gw.lan' }]]) {
      assert.doesNotThrow(() => compilePassiveAddress(setting));
    }
  });
});

describe('chooseTarget', () => {
  const rules = compilePassiveAddress([
    { from: '10.0.0.0/8', announce: '10.0.0.5' },
    { from: ['192.168.0.0/16', '172.16.0.0/12'], announce: '172.16.0.1' },
    { from: '2001:db8::/32', announce: 'v6.example.net' },
    { from: '10.1.0.0/16', announce: '10.1.0.1' }, // shadowed: the first match wins
  ]);
  const cases: Array<[string, unknown]> = [
    ['10.2.3.4', { kind: 'address', address: '10.0.0.5' }],
    ['10.1.2.3', { kind: 'address', address: '10.0.0.5' }],
    ['192.168.7.7', { kind: 'address', address: '172.16.0.1' }],
    ['172.31.255.255', { kind: 'address', address: '172.16.0.1' }],
    ['172.32.0.1', { kind: 'connected' }], // no rule matches
    ['2001:db8::42', { kind: 'host', name: 'v6.example.net' }],
    ['203.0.113.9', { kind: 'connected' }],
    ['', { kind: 'connected' }],
  ];
  for (const [client, expected] of cases) {
    it(`client ${client || '(unknown)'} gets ${JSON.stringify(expected)}`, () => assert.deepEqual(chooseTarget(rules, client), expected));
  }

  it('a rule without from is the catch-all, and a plain string is one for everyone', () => {
    const withCatchAll = compilePassiveAddress([{ from: '10.0.0.0/8', announce: 'connected' }, { announce: '203.0.113.7' }]);
    assert.deepEqual(chooseTarget(withCatchAll, '10.9.9.9'), { kind: 'connected' });
    assert.deepEqual(chooseTarget(withCatchAll, '198.51.100.1'), { kind: 'address', address: '203.0.113.7' });
    assert.deepEqual(chooseTarget(withCatchAll, '2001:db8::1'), { kind: 'address', address: '203.0.113.7' });
    assert.deepEqual(chooseTarget(compilePassiveAddress('FTP.Example.com'), '10.0.0.1'), { kind: 'host', name: 'ftp.example.com' });
  });
});

describe('PassiveAddress.announce', () => {
  it('looks a host name up through the system resolver (localhost)', async () => {
    const log = recordingLogger();
    assert.equal(await new PassiveAddress('localhost').announce('10.0.0.1', '192.0.2.1', log), '127.0.0.1');
    assert.deepEqual(log.warnings, []);
  });

  it('reuses an answer for ttlMs, then asks again (dynamic DNS is followed)', async () => {
    const answers = ['198.51.100.1', '198.51.100.2'];
    let calls = 0;
    const lookup: Lookup = async () => answers[Math.min(calls++, answers.length - 1)]!;
    const passive = new PassiveAddress('dyn.example.net', { ttlMs: 150 }, lookup);
    const log = recordingLogger();
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '198.51.100.1');
    assert.equal(await passive.announce('10.0.0.2', '192.0.2.1', log), '198.51.100.1');
    assert.equal(calls, 1);
    await sleep(200);
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '198.51.100.2');
    assert.equal(calls, 2);
  });

  it('sessions asking at once share one lookup', async () => {
    let calls = 0;
    const lookup: Lookup = async () => {
      calls++;
      await sleep(50);
      return '198.51.100.9';
    };
    const passive = new PassiveAddress('dyn.example.net', {}, lookup);
    const answers = await Promise.all(Array.from({ length: 20 }, () => passive.announce('10.0.0.1', '192.0.2.1', recordingLogger())));
    assert.deepEqual(new Set(answers), new Set(['198.51.100.9']));
    assert.equal(calls, 1);
  });

  it('a failed lookup announces the connected address, is logged, and is not retried before retryMs', async () => {
    let calls = 0;
    const lookup: Lookup = async (name) => {
      calls++;
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    };
    const passive = new PassiveAddress('gone.example.net', { retryMs: 150 }, lookup);
    const log = recordingLogger();
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '192.0.2.1');
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '192.0.2.1');
    assert.equal(calls, 1);
    assert.equal(log.warnings.length, 1);
    assert.match(log.warnings[0]!, /looking up gone\.example\.net failed; PASV announces the address the client connected to/);
    await sleep(200);
    await passive.announce('10.0.0.1', '192.0.2.1', log);
    assert.equal(calls, 2);
  });

  it('a resolver that never answers costs one timeout, and the name keeps its last known address', async () => {
    let calls = 0;
    let hang = false;
    const lookup: Lookup = (): Promise<string> => {
      calls++;
      return hang ? new Promise<string>(() => {}) : Promise.resolve('198.51.100.7');
    };
    const passive = new PassiveAddress('dyn.example.net', { ttlMs: 1, timeoutMs: 100, retryMs: 60_000 }, lookup);
    const log = recordingLogger();
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '198.51.100.7');
    hang = true;
    await sleep(5);
    const started = Date.now();
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '198.51.100.7');
    const waited = Date.now() - started;
    assert.ok(waited >= 90 && waited < 5000, `waited ${waited} ms for a 100 ms timeout`);
    assert.match(log.warnings[0]!, /looking up dyn\.example\.net failed; PASV announces its last known address/);
    // Within retryMs: the stale address at once, no new lookup.
    const again = Date.now();
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '198.51.100.7');
    assert.ok(Date.now() - again < 50);
    assert.equal(calls, 2);
  });

  it('an answer that is not IPv4 counts as a failure', async () => {
    const passive = new PassiveAddress('v6only.example.net', {}, async () => '2001:db8::1');
    const log = recordingLogger();
    assert.equal(await passive.announce('10.0.0.1', '192.0.2.1', log), '192.0.2.1');
    assert.equal(log.warnings.length, 1);
  });

  it('literal addresses and connected need no lookup', async () => {
    const lookup: Lookup = async () => assert.fail('no lookup expected');
    const passive = new PassiveAddress([{ from: '127.0.0.2', announce: '10.0.0.5' }, { from: '127.0.0.0/8', announce: 'connected' }], {}, lookup);
    const log = recordingLogger();
    assert.equal(await passive.announce('127.0.0.2', '127.0.0.1', log), '10.0.0.5');
    assert.equal(await passive.announce('127.0.0.1', '127.0.0.1', log), '127.0.0.1');
    assert.equal(await new PassiveAddress(null, {}, lookup).announce('10.0.0.1', '192.0.2.1', log), '192.0.2.1');
  });
});
