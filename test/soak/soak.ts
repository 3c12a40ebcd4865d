/**
 * `npm run soak -- [--clients 1000] [--minutes 10] [--out test/soak]`: many
 * concurrent basic-ftp clients against one Ferry server (in its own
 * process, so its RSS and open files are its own) for a bounded time. Each
 * client logs in, then loops with a pause between operations: list its
 * folder or the shared one, upload a random file (1 KiB to 1 MiB), download
 * one of its own files or a shared one; now and then it logs out and in
 * again. Every upload is checked by SHA-256 against the file on disk, every
 * download against what was uploaded. Any error fails the run.
 *
 * The server's RSS, open files and sessions are sampled every few seconds;
 * with --out, RESULTS.md and soak.svg (a chart drawn here, no dependency)
 * are written there. The soak's own server raises the connection limits
 * (maxConnections and maxConnectionsPerIp, 512 and 32 by default) to
 * 2 x clients: every client comes from 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client } from 'basic-ftp';
import { Collect, PASSIVE_POOL_IDLE_MS, sha256, warmUp } from '../load/probe.js';
import { FILES_PER_THREAD, LOAD_PASSWORD, LOAD_USER, MAX_NEW_THREADS, startServerProcess, type ServerProcess } from '../load/server-process.js';
import { soakChart, type Sample } from './chart.js';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    minutes: { type: 'string', default: '10' },
    'think-ms': { type: 'string', default: '2000' },
    'sample-seconds': { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const clients = Number(args.clients);
const minutes = Number(args.minutes);
const thinkMs = Number(args['think-ms']);
if (!(clients >= 1 && clients <= 5000) || !(minutes > 0 && minutes <= 60)) {
  console.error('soak: --clients must be 1-5000 and --minutes at most 60');
  process.exit(2);
}
const MiB = 1024 * 1024;
/** After the deadline, clients finish their operation and leave; past this grace the run fails. */
const FINISH_GRACE_MS = 60_000;

const totals = { logins: 0, lists: 0, uploads: 0, downloads: 0, uploadedBytes: 0, downloadedBytes: 0 };
/** Milliseconds per operation (an upload's includes reading the file back from disk for its SHA-256). */
const latencies = { login: [] as number[], list: [] as number[], upload: [] as number[], download: [] as number[] };
const errors: string[] = [];
let errorCount = 0;
function fail(message: string): void {
  errorCount++;
  if (errors.length < 20) errors.push(message);
}

interface Shared {
  name: string;
  hash: string;
}

async function soakClient(index: number, server: ServerProcess, shared: Shared[], until: number): Promise<void> {
  const own = new Map<string, string>(); // name -> SHA-256 of what this client uploaded there
  const folder = `c${index}`;
  // Spread the first logins over the first 10 s (or a tenth of the run).
  await sleep(Math.random() * Math.min(10_000, (until - Date.now()) / 10));
  while (Date.now() < until) {
    const client = new Client(60_000);
    try {
      let began = performance.now();
      await client.access({ host: '127.0.0.1', port: server.port, user: LOAD_USER, password: LOAD_PASSWORD });
      latencies.login.push(performance.now() - began);
      totals.logins++;
      const operations = 5 + Math.floor(Math.random() * 30);
      for (let op = 0; op < operations && Date.now() < until; op++) {
        await sleep(Math.random() * 2 * thinkMs);
        const roll = Math.random();
        began = performance.now();
        if (roll < 0.25) {
          await client.list(Math.random() < 0.5 ? folder : 'shared');
          totals.lists++;
          latencies.list.push(performance.now() - began);
        } else if (roll < 0.6 || own.size === 0) {
          const name = `${folder}/f${Math.floor(Math.random() * 3)}.bin`;
          const size = Math.random() < 0.8 ? 1024 + Math.floor(Math.random() * 64 * 1024) : Math.floor(Math.random() * MiB);
          const body = randomBytes(size);
          const hash = sha256(body);
          await client.uploadFrom(Readable.from([body]), name);
          const onDisk = sha256(await readFile(path.join(server.root, name)));
          if (onDisk !== hash) fail(`client ${index}: ${name} on disk differs from what was uploaded (${size} bytes)`);
          own.set(name, hash);
          totals.uploads++;
          latencies.upload.push(performance.now() - began);
          totals.uploadedBytes += size;
        } else {
          const ownNames = [...own.keys()];
          const pick = Math.random() < 0.5 ? shared[Math.floor(Math.random() * shared.length)]! : { name: ownNames[Math.floor(Math.random() * ownNames.length)]!, hash: '' };
          const expected = pick.hash || own.get(pick.name)!;
          const sink = new Collect();
          await client.downloadTo(sink, pick.name);
          if (sha256(sink.data) !== expected) fail(`client ${index}: ${pick.name} downloaded differs from what is known (${sink.data.length} bytes)`);
          totals.downloads++;
          latencies.download.push(performance.now() - began);
          totals.downloadedBytes += sink.data.length;
        }
      }
      await client.send('QUIT').catch(() => undefined);
    } catch (err) {
      fail(`client ${index}: ${(err as Error).message}`);
      await sleep(1000);
    } finally {
      client.close();
    }
  }
}

function percentiles(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(0);
  return `${at(0.5)}/${at(0.99)}/${(sorted.at(-1) ?? 0).toFixed(0)}`;
}

function cpuSeconds(pid: number, stat: string): number {
  // Fields 14 and 15 of /proc/<pid>/stat: user and system time in clock ticks (100 per second on Linux).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function main(): Promise<number> {
  const server = await startServerProcess({ maxConnections: clients * 2, maxConnectionsPerIp: clients * 2 });
  const samples: Sample[] = [];
  let sampler: NodeJS.Timeout | null = null;
  try {
    await mkdir(path.join(server.root, 'shared'));
    for (let i = 0; i < clients; i++) await mkdir(path.join(server.root, `c${i}`));
    const shared: Shared[] = [];
    for (const size of [0, 1, 1000, 64 * 1024, 300 * 1024, MiB, 4 * MiB]) {
      const body = randomBytes(size);
      const name = `shared/s${size}.bin`;
      await writeFile(path.join(server.root, name), body);
      shared.push({ name, hash: sha256(body) });
    }
    await warmUp({ port: server.port, user: LOAD_USER, password: LOAD_PASSWORD });
    const baseline = { ...(await server.stats({ gc: true })), fds: await server.openFiles(), threads: await server.threads() };
    const started = Date.now();
    const ownCpu = process.cpuUsage();
    const until = started + minutes * 60_000;
    console.log(`soak: ${clients} clients for ${minutes} min against server pid ${server.pid} (baseline ${baseline.fds} open files, RSS ${(baseline.rss / MiB).toFixed(1)} MiB)`);
    const sample = async (): Promise<void> => {
      const [stats, fds, stat] = await Promise.all([server.stats(), server.openFiles(), readFile(`/proc/${server.pid}/stat`, 'utf8')]);
      samples.push({ seconds: (Date.now() - started) / 1000, rss: stats.rss, fds, sessions: stats.sessions, cpu: cpuSeconds(server.pid, stat) });
    };
    await sample();
    sampler = setInterval(() => void sample().catch(() => undefined), Number(args['sample-seconds']) * 1000);
    const run = Promise.all(Array.from({ length: clients }, (_, i) => soakClient(i, server, shared, until)));
    const finished = await Promise.race([run.then(() => true), sleep(until - Date.now() + FINISH_GRACE_MS).then(() => false)]);
    if (!finished) fail(`clients still running ${FINISH_GRACE_MS / 1000} s after the deadline`);
    const elapsed = (Date.now() - started) / 1000;
    clearInterval(sampler);
    sampler = null;
    await sample();
    // Every client has closed: the server must have noticed.
    let after = await server.stats();
    for (let i = 0; i < 50 && after.sessions > 0; i++) after = (await sleep(200), await server.stats());
    if (after.sessions > 0) fail(`${after.sessions} sessions remain 10 s after every client left`);
    await sleep(PASSIVE_POOL_IDLE_MS);
    const end = { ...(await server.stats({ gc: true })), fds: await server.openFiles() };
    const peak = samples.reduce((a, s) => ({ rss: Math.max(a.rss, s.rss), fds: Math.max(a.fds, s.fds), sessions: Math.max(a.sessions, s.sessions) }), { rss: 0, fds: 0, sessions: 0 });
    const operations = totals.lists + totals.uploads + totals.downloads;
    const serverCpu = samples.at(-1)!.cpu - samples[0]!.cpu;
    const { user, system } = process.cpuUsage(ownCpu);
    const clientCpu = (user + system) / 1e6;
    const lines = [
      `- ${clients} clients, ${minutes} min (${elapsed.toFixed(0)} s with the finish), think time 0-${2 * thinkMs} ms between operations`,
      `- ${operations} operations (${(operations / elapsed).toFixed(1)}/s): ${totals.logins} logins, ${totals.lists} listings, ${totals.uploads} uploads (${(totals.uploadedBytes / MiB).toFixed(0)} MiB), ${totals.downloads} downloads (${(totals.downloadedBytes / MiB).toFixed(0)} MiB), every transfer checked by SHA-256`,
      `- latency in ms, median/99th percentile/max: ${Object.entries(latencies).map(([op, values]) => `${op} ${percentiles(values)}`).join(', ')}`,
      `- unexpected errors: ${errorCount}`,
      `- server: peak ${peak.sessions} sessions, peak RSS ${(peak.rss / MiB).toFixed(1)} MiB, peak ${peak.fds} open files; CPU ${serverCpu.toFixed(1)} s (${((serverCpu / elapsed) * 100).toFixed(0)}% of one core); the clients' process (basic-ftp, SHA-256, random data): CPU ${clientCpu.toFixed(1)} s (${((clientCpu / elapsed) * 100).toFixed(0)}%)`,
      `- before: RSS ${(baseline.rss / MiB).toFixed(1)} MiB (V8 heap ${(baseline.heapUsed / MiB).toFixed(1)} MiB, external ${(baseline.external / MiB).toFixed(1)} MiB), ${baseline.fds} open files; after (clients gone, GC): RSS ${(end.rss / MiB).toFixed(1)} MiB (V8 heap ${(end.heapUsed / MiB).toFixed(1)} MiB, external ${(end.external / MiB).toFixed(1)} MiB), ${end.fds} open files, ${after.sessions} sessions`,
    ];
    console.log(lines.join('\n'));
    if (args.out) {
      await mkdir(args.out, { recursive: true });
      await writeFile(path.join(args.out, 'soak.svg'), soakChart(samples, `Ferry soak: ${clients} clients, ${minutes} min`));
      const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load average at the end ${os.loadavg().map((n) => n.toFixed(1)).join(' ')}`;
      const results = [
        '# Soak results',
        '',
        `Run on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC with \`npm run soak -- --clients ${clients} --minutes ${minutes} --out ${args.out}\`.`,
        `Machine: ${machine}. The CPU was shared with other work at the time.`,
        '',
        ...lines,
        '',
        '![server RSS, open files and sessions over time](soak.svg)',
        '',
        ...(errors.length ? ['First errors:', '', ...errors.map((e) => `- ${e}`), ''] : []),
      ];
      await writeFile(path.join(args.out, 'RESULTS.md'), results.join('\n'));
    }
    const newThreads = Math.max(0, (await server.threads()) - baseline.threads);
    if (newThreads > MAX_NEW_THREADS) fail(`${newThreads} more threads than before the soak (at most ${MAX_NEW_THREADS} may start late)`);
    if (end.fds > baseline.fds + 8 + FILES_PER_THREAD * newThreads) {
      fail(`open files ${end.fds} after the soak, baseline ${baseline.fds} (+8, +${FILES_PER_THREAD} for each of ${newThreads} new threads allowed)`);
    }
  } finally {
    if (sampler) clearInterval(sampler);
    await server.stop();
  }
  if (errorCount > 0) {
    console.error(`soak: FAILED, ${errorCount} unexpected errors; first ones:\n  ${errors.join('\n  ')}`);
    return 1;
  }
  console.log('soak: passed');
  return 0;
}

process.exit(await main().catch((err: Error) => (console.error(`soak: ${err.stack}`), 1)));
