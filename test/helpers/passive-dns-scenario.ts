/**
 * Run by test/integration/passive-address.test.ts inside a private network
 * and mount namespace (`unshare --net --mount`) whose /etc/resolv.conf names
 * 127.0.0.1: a real DNS server here answers the host names of
 * `masqueradeAddress`, so the system resolver (getaddrinfo, as in
 * production) is exercised without any query leaving the namespace. Prints
 * one JSON line with what each client saw.
 *
 * Names: dyn.test moves from .7 to .8 (dynamic DNS); stale.test stops
 * answering after its first answer; gone.test does not exist (NXDOMAIN).
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { Logger } from '../../src/observability/logger.js';
import { RawClient } from './ftp-raw.js';
import { PASSWORD, startServer, USER } from './server.js';

type Answer = string | 'nxdomain' | 'silent';
const answers = new Map<string, Answer>([
  ['dyn.test', '198.51.100.7'],
  ['stale.test', '198.51.100.9'],
  ['gone.test', 'nxdomain'],
]);
const queries = new Map<string, number>();

/** A DNS server for A queries (RFC 1035 §4.1): one question, one answer or NXDOMAIN. */
const dns = dgram.createSocket('udp4');
dns.on('message', (query, peer) => {
  let at = 12;
  const labels: string[] = [];
  while (at < query.length && query[at]! > 0) {
    labels.push(query.subarray(at + 1, at + 1 + query[at]!).toString('ascii'));
    at += 1 + query[at]!;
  }
  const question = query.subarray(12, at + 5); // name, its zero byte, type, class
  const name = labels.join('.').toLowerCase();
  const type = query.readUInt16BE(at + 1);
  queries.set(name, (queries.get(name) ?? 0) + 1);
  const answer = answers.get(name) ?? 'nxdomain';
  if (answer === 'silent') return;
  const found = answer !== 'nxdomain' && type === 1;
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8180 | (answer === 'nxdomain' ? 3 : 0), 2); // response, RD, RA, rcode
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(found ? 1 : 0, 6);
  const record = found
    ? Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(answer.split('.').map(Number))])
    : Buffer.alloc(0);
  dns.send(Buffer.concat([header, question, record]), peer.port, peer.address);
});
dns.bind(53, '127.0.0.1');
await once(dns, 'listening');

const warnings: string[] = [];
const noop = () => {};
const logger: Logger = {
  debug: noop,
  info: noop,
  error: noop,
  warn: (obj: object | string, msg?: string) => void warnings.push(typeof obj === 'string' ? obj : (msg ?? '')),
  child: () => logger,
};

const cleanups: Array<() => Promise<void>> = [];
const { port } = await startServer(
  { after: (fn) => void cleanups.push(fn) },
  {
    logger,
    masqueradeAddress: [
      { from: '127.0.0.2', announce: 'dyn.test' },
      { from: '127.0.0.3', announce: 'stale.test' },
      { from: '127.0.0.4', announce: 'gone.test' },
    ],
  },
);

/** The address of a PASV reply, and how long it took. */
async function pasv(client: RawClient): Promise<{ address: string; ms: number }> {
  const started = Date.now();
  const reply = await client.command('PASV', 227);
  const [h1, h2, h3, h4] = /\((\d+),(\d+),(\d+),(\d+),\d+,\d+\)/.exec(reply.text)!.slice(1);
  return { address: `${h1}.${h2}.${h3}.${h4}`, ms: Date.now() - started };
}

const [dyn, stale, gone] = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((from) => RawClient.login(port, USER, PASSWORD, '127.0.0.1', from)));
const result: Record<string, unknown> = {};
result.first = { dyn: await pasv(dyn!), stale: await pasv(stale!), gone: await pasv(gone!) };
answers.set('dyn.test', '198.51.100.8');
answers.set('stale.test', 'silent');
result.cached = await pasv(dyn!);
result.queriesBeforeExpiry = Object.fromEntries(queries);
await new Promise((resolve) => setTimeout(resolve, 10_500)); // the cache keeps an answer 10 s
result.moved = await pasv(dyn!);
result.stale = await pasv(stale!);
result.staleStillServes = (await stale!.command('NOOP')).code;
result.warnings = warnings;
result.queries = Object.fromEntries(queries);
console.log(JSON.stringify(result));

for (const client of [dyn, stale, gone]) client!.close();
for (const cleanup of cleanups) await cleanup();
dns.close();
