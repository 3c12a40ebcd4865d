/**
 * The STAT flood of issue 11, as a measurement: N clients each start a
 * transfer, then pipeline STAT commands on the control connection and never
 * read a reply. Before the fix, 150 of them took the server from 69 MB to
 * 1.95 GB RSS and a new client waited more than 10 s for its greeting.
 *
 *   node --import tsx bench/stat-flood.ts [--clients 150] [--seconds 15] [--mode download|upload]
 *
 * Starts `ferry` (dist/, so run `npm run build` first) in its own process,
 * samples its RSS every 100 ms, greets a fresh client every 250 ms, and
 * prints: RSS before / peak / after, how many flooders were cut off and
 * when, and the slowest greeting. Loopback only; every loop is bounded.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '150' },
    seconds: { type: 'string', default: '15' },
    mode: { type: 'string', default: 'download' },
  },
});
const CLIENTS = Number(values.clients);
const SECONDS = Number(values.seconds);
const MODE = values.mode === 'upload' ? 'upload' : 'download';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** Read replies until one with `code` (a final line "NNN "), bounded by 5 s. */
function expect(socket: net.Socket, code: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => done(new Error(`no ${code} within 20 s: ${text.slice(-200)}`)), 5000);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const match = new RegExp(`(^|\\n)${code} [^\\n]*\\n`).exec(text);
      if (match) done(null, text);
    };
    const done = (err: Error | null, value = ''): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      if (err) reject(err);
      else resolve(value);
    };
    socket.on('data', onData);
  });
}

async function login(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await expect(socket, 220);
  socket.write('USER u\r\n');
  await expect(socket, 331);
  socket.write('PASS p\r\n');
  await expect(socket, 230);
  socket.write('TYPE I\r\n');
  await expect(socket, 200);
  return socket;
}

interface Flooder {
  cutAt: number | null;
}

async function flood(control: net.Socket, startedAt: number, deadline: number): Promise<Flooder> {
  const state: Flooder = { cutAt: null };
  control.write('EPSV\r\n');
  const epsv = await expect(control, 229);
  const dataPort = Number(/\(\|\|\|(\d+)\|\)/.exec(epsv)![1]);
  const data = net.connect(dataPort, '127.0.0.1');
  data.on('error', () => undefined);
  control.write(MODE === 'download' ? 'RETR big.bin\r\n' : `STOR up-${Math.random().toString(36).slice(2)}.bin\r\n`);
  await expect(control, 150);
  // From here on, never read a reply: the client's receive window fills and
  // the server's replies pile up on its side.
  control.pause();
  control.once('close', () => (state.cutAt ??= Date.now() - startedAt));
  if (MODE === 'download') data.pause(); // the download stalls too: the transfer stays in progress
  const chunk = Buffer.alloc(16 * 1024);
  const stats = Buffer.from('STAT\r\n'.repeat(process.env.FLOOD_STATS === '0' ? 0 : 1000));
  while (Date.now() < deadline && !control.destroyed && control.writable) {
    control.write(stats);
    if (MODE === 'upload' && data.writable && data.writableLength < 1 << 20) data.write(chunk);
    await sleep(10);
  }
  const cut = state.cutAt !== null;
  control.destroy();
  data.destroy();
  if (!cut) state.cutAt = null;
  return state;
}

async function main(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-stat-flood-'));
  await writeFile(path.join(root, 'big.bin'), Buffer.alloc(256 * 1024 * 1024, 0x62));
  const server = spawn(
    process.execPath,
    [path.join(repo, 'dist/cli/main.js'), '--root', root, '--port', '0', '--host', '127.0.0.1', '--user', 'u:p', '--write',
      '--max-connections', '2000', '--max-connections-per-ip', '2000', '--log-level', 'error'],
    // The flooders and the probe that checks new clients are still greeted share 127.0.0.1: without the
    // allow list the defender would ban it for the flood (its queue overflows) and refuse the probe too.
    { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, NODE_OPTIONS: process.env.FLOOD_SERVER_NODE_OPTIONS ?? '', FERRY_DEFENDER_ALLOW_LIST: '[127.0.0.1]' } },
  );
  try {
    let banner = '';
    // The banner is on standard error (standard output carries log lines only); pass it on.
    server.stderr!.on('data', (chunk: Buffer) => {
      banner += chunk.toString();
      process.stderr.write(chunk);
    });
    for (let i = 0; i < 100 && !/:(\d+)\//.test(banner); i++) await sleep(50);
    const port = Number(/127\.0\.0\.1:(\d+)\//.exec(banner)?.[1]);
    if (!port) throw new Error(`no port in the banner: ${banner}`);
    await sleep(500);
    // Log in first, ten at a time (the first login hashes the password), then flood all at once.
    const controls: net.Socket[] = [];
    for (let i = 0; i < CLIENTS; i += 10) {
      controls.push(...(await Promise.all(Array.from({ length: Math.min(10, CLIENTS - i) }, () => login(port)))));
    }
    const before = await rssMiB(server.pid!);
    const startedAt = Date.now();
    const deadline = startedAt + SECONDS * 1000;
    let peak = before;
    let slowestGreeting = 0;
    let greetingsMissed = 0;
    const sampler = (async () => {
      while (Date.now() < deadline + 2000) {
        peak = Math.max(peak, await rssMiB(server.pid!));
        await sleep(100);
      }
    })();
    const greeter = (async () => {
      while (Date.now() < deadline) {
        const t0 = Date.now();
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => undefined);
        try {
          await Promise.race([once(socket, 'data'), sleep(10_000).then(() => Promise.reject(new Error('no greeting')))]);
          slowestGreeting = Math.max(slowestGreeting, Date.now() - t0);
        } catch {
          greetingsMissed++;
        } finally {
          socket.destroy();
        }
        await sleep(250);
      }
    })();
    const flooders = await Promise.all(controls.map((control) => flood(control, startedAt, deadline)));
    await Promise.all([sampler, greeter]);
    const after = await rssMiB(server.pid!);
    const cut = flooders.filter((f) => f.cutAt !== null).map((f) => f.cutAt!).sort((a, b) => a - b);
    console.log(`STAT flood (${MODE} in progress): ${CLIENTS} clients for ${SECONDS} s`);
    console.log(`server RSS: before ${before.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB, after ${after.toFixed(0)} MiB`);
    console.log(`cut off by the server: ${cut.length} of ${CLIENTS}` + (cut.length ? `, the last after ${(cut.at(-1)! / 1000).toFixed(1)} s` : ''));
    console.log(`new clients: slowest greeting ${slowestGreeting} ms, ${greetingsMissed} without a greeting within 10 s`);
  } finally {
    server.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  }
}

await main();
