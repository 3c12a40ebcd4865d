/**
 * `npm run bench`: runs every workload against Ferry (1 worker and N workers)
 * and the peer servers, one server at a time, and writes bench/RESULTS.md.
 *
 *   npm run bench                                   # everything (~12 min on 2 cores)
 *   npm run bench -- --servers ferry --workloads get-small --duration 2
 *
 * Options (also as env BENCH_<NAME>, e.g. BENCH_DURATION=4):
 *   --servers LIST     ferry,ferry-n,ferry-nofsync,ferry-tls,ferry-s3,vsftpd,pure-ftpd,pyftpdlib,ftp-srv (default: all;
 *                      ferry-nofsync, Ferry with --no-fsync, runs the upload workloads only;
 *                      ferry-tls, Ferry over explicit FTPS with PROT P, runs the transfer workloads only;
 *                      ferry-s3, Ferry on an s3rver bucket, runs get/put-small and get/put-big only;
 *                      ferry-limited, Ferry with bandwidth limits too high to bind, runs get-small, get-big and put-big only)
 *   --workloads LIST   login,get-small,put-small,get-big,put-big,list,many-get,idle (default: all)
 *   --duration S       measured seconds per workload (default 8)
 *   --warmup S         seconds of load before measuring (default 1)
 *   --clients N        clients for login, get-small, put-small, list (default 50)
 *   --many-clients N   clients for many-get (default 100)
 *   --idle-sessions N  sessions for idle (default 2000)
 *   --generators N     generator processes (default 1)
 *   --workers N        Ferry's worker processes for the ferry-n row (default: CPU count)
 *   --pipeline-login   send USER and PASS in one write to servers that accept it
 *   --out FILE         where to write the report (default: bench/RESULTS.md for a
 *                      full run, bench/.peers/RESULTS-partial.md for a partial one)
 *   --data-dir DIR     where the served files live (default bench/.peers/data; e.g.
 *                      /dev/shm/ferry-bench to take the disk out of the uploads)
 *   --install          run bench/peers/install.sh even if the peers look installed
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { cleanUploads, DEFAULT_SIZES, PATHS, prepareData } from './data.js';
import { runLoad } from './loadgen/run-load.js';
import { cpuSeconds, memoryKiB, processTree } from './loadgen/procstat.js';
import { WORKLOADS, type Workload } from './loadgen/types.js';
import { allocatePorts } from './ports.js';
import { probe } from './probe.js';
import { renderResults, WORKLOAD_INFO, type Machine, type Row, type Settings } from './report.js';
import { benchS3, stopBenchS3 } from './s3.js';
import { BENCH_DIR, REPO_DIR, ferryBuilt, ferryCliFlags, startFerry, startPeer, type RunningServer, type ServerSettings } from './servers.js';

const ALL_SERVERS = ['ferry', 'ferry-n', 'ferry-nofsync', 'ferry-tls', 'ferry-s3', 'ferry-limited', 'vsftpd', 'pure-ftpd', 'pyftpdlib', 'ftp-srv'] as const;
/**
 * The workloads the FTPS and S3 rows run: the ones that move data (for FTPS,
 * login and idle would measure handshakes and TLS buffers, another study; on
 * S3, listings of s3rver's disk walk would measure s3rver alone).
 */
const TRANSFER_WORKLOADS = new Set<Workload>(['get-small', 'put-small', 'get-big', 'put-big']);
/** What the ferry-limited row runs: the big transfers, and a small one (a throttle per transfer). */
const LIMITED_WORKLOADS = new Set<Workload>(['get-small', 'get-big', 'put-big']);
/**
 * Limits for the ferry-limited row: 100 GB/s, server-wide and per user, in both
 * directions, so every transfer goes through the throttled data path (two
 * rates each) but none is ever slowed: the row shows what a limit costs.
 */
const UNREACHED_LIMIT = '100000000000';
const PEERS = new Set(['vsftpd', 'pure-ftpd', 'pyftpdlib', 'ftp-srv']);
const HOST = '127.0.0.1';
const USER = 'ferrybench';
const PASSWORD = 'benchpass';
// pure-ftpd accepts half as many clients as it has passive ports; 9 servers × 3,001 ports fit below the
// kernel's ephemeral range (32768+) and above 5000, which 4,096 each no longer did once ferry-tls and ferry-s3 came;
// a tenth (ferry-limited) goes above the range (61000+).
const PASSIVE_PORTS = 3000;
let DATA_ROOT = join(BENCH_DIR, '.peers', 'data', 'root');
const WORK_ROOT = join(BENCH_DIR, '.peers', 'work');

// ---------------------------------------------------------------- options

function usageError(message: string): never {
  process.stderr.write(`[bench] ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) usageError(`unexpected argument ${a} (options look like --duration 2)`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) out.set(a.slice(2), argv[++i]!);
    else out.set(a.slice(2), 'true');
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const KNOWN = ['servers', 'workloads', 'duration', 'warmup', 'clients', 'many-clients', 'idle-sessions', 'generators', 'workers', 'pipeline-login', 'out', 'data-dir', 'install', 'help'];
for (const k of args.keys()) if (!KNOWN.includes(k)) usageError(`unknown option --${k} (known: ${KNOWN.map((x) => `--${x}`).join(' ')})`);
if (args.has('help')) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*?|^ \* ?/gm, '') + '\n');
  process.exit(0);
}
const opt = (name: string): string | undefined => args.get(name) ?? process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
const num = (name: string, dflt: number, min = 0): number => {
  const v = opt(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) usageError(`--${name} ${v}: expected a number >= ${min}`);
  return n;
};
const list = <T extends string>(name: string, all: readonly T[]): T[] => {
  const v = opt(name);
  if (v === undefined || v === 'all') return [...all];
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const it of items) if (!all.includes(it as T)) usageError(`--${name}: unknown ${it} (known: ${all.join(', ')})`);
  return all.filter((x) => items.includes(x)); // canonical order
};

const servers = list('servers', ALL_SERVERS);
const workloads = list('workloads', WORKLOADS);
const settings: Settings = {
  durationS: num('duration', 8, 0.1),
  warmupS: num('warmup', 1, 0),
  clients: Math.round(num('clients', 50, 1)),
  manyClients: Math.round(num('many-clients', 100, 1)),
  idleSessions: Math.round(num('idle-sessions', 2000, 1)),
  generators: Math.round(num('generators', 1, 1)),
  workers: Math.round(num('workers', os.cpus().length, 2)),
  pipelineLogin: opt('pipeline-login') === 'true' || opt('pipeline-login') === '1',
};
if (opt('data-dir')) DATA_ROOT = join(resolve(opt('data-dir')!), 'root');
const fullRun = servers.length === ALL_SERVERS.length && workloads.length === WORKLOADS.length;
const outFile = opt('out') ?? (fullRun ? join(BENCH_DIR, 'RESULTS.md') : join(BENCH_DIR, '.peers', 'RESULTS-partial.md'));

const log = (s: string) => process.stdout.write(`[bench] ${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- machine

function machineInfo(peerVersions: Record<string, string>): Machine {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let osName = `${os.type()} ${os.release()}`;
  try {
    osName = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    /* keep */
  }
  let ferry = JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')).version as string;
  try {
    const commit = execFileSync('git', ['-C', REPO_DIR, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', REPO_DIR, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== '';
    ferry += ` (commit ${commit}${dirty ? ', with uncommitted changes in src/' : ''})`;
  } catch {
    /* not a git checkout */
  }
  return {
    cpu: model,
    cores: os.cpus().length,
    ramGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    node: process.version,
    os: osName,
    date: new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
    ferry,
    peers: peerVersions,
  };
}

// ---------------------------------------------------------------- servers

function label(server: string): string {
  if (server === 'ferry') return 'Ferry (1 worker)';
  if (server === 'ferry-n') return `Ferry (${settings.workers} workers)`;
  if (server === 'ferry-nofsync') return 'Ferry (1 worker, --no-fsync)';
  if (server === 'ferry-tls') return 'Ferry (1 worker, FTPS)';
  if (server === 'ferry-limited') return 'Ferry (1 worker, limits set)';
  if (server === 'ferry-s3') return 'Ferry on S3 (s3rver)';
  return server;
}

/** A self-signed pair for the FTPS row, made once with `ferry cert`. */
function tlsFiles(): { cert: string; key: string } {
  const dir = join(BENCH_DIR, '.peers', 'tls');
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  if (!existsSync(files.key)) {
    execFileSync(process.execPath, [join(REPO_DIR, 'dist', 'cli', 'main.js'), 'cert', '--self-signed', '--host', HOST, '--out', dir], { stdio: 'ignore' });
  }
  return files;
}

async function startServer(server: string, s: ServerSettings): Promise<RunningServer> {
  if (server === 'ferry') return startFerry(s, 1);
  if (server === 'ferry-n') return startFerry(s, settings.workers);
  if (server === 'ferry-nofsync') return startFerry(s, 1, ['--no-fsync']);
  if (server === 'ferry-limited') {
    return startFerry(s, 1, [], {
      FERRY_LIMITS_DOWNLOAD_BYTES_PER_SECOND: UNREACHED_LIMIT,
      FERRY_LIMITS_UPLOAD_BYTES_PER_SECOND: UNREACHED_LIMIT,
      FERRY_LIMITS_PER_USER_DOWNLOAD_BYTES_PER_SECOND: UNREACHED_LIMIT,
      FERRY_LIMITS_PER_USER_UPLOAD_BYTES_PER_SECOND: UNREACHED_LIMIT,
    });
  }
  // Policy optional: the probe checks the server in plain FTP; the workload itself uses AUTH TLS and PROT P.
  if (server === 'ferry-tls') {
    const { cert, key } = tlsFiles();
    return startFerry(s, 1, ['--tls-cert', cert, '--tls-key', key, '--tls-policy', 'optional']);
  }
  if (server === 'ferry-s3') {
    const s3 = await benchS3(DATA_ROOT, WORK_ROOT, log);
    return startFerry(s, 1, s3.flags, s3.env);
  }
  return startPeer(server, s);
}

/** The largest peak resident set (VmHWM) among the processes, in KiB. */
function peakRssKiB(pids: readonly number[]): number {
  let peak = 0;
  for (const pid of pids) {
    try {
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0));
    } catch {
      /* gone */
    }
  }
  return peak;
}

/** CPU seconds of the server: every process under its roots, reaped children included. */
function serverCpu(server: RunningServer): number {
  let total = 0;
  for (const root of server.roots()) total += cpuSeconds(processTree(root));
  return total;
}

// ---------------------------------------------------------------- one measurement

async function measure(workload: Workload, server: string, s: ServerSettings): Promise<Row> {
  const row: Row = { workload, server, label: label(server), ok: false };
  let running: RunningServer | undefined;
  try {
    await warmCache(workload, s.root);
    running = await startServer(server, s);
    const p = await probe(HOST, s.port, USER, PASSWORD, { path: PATHS.small, size: DEFAULT_SIZES.small }, workload === 'list' ? PATHS.listDir : null);
    if (workload === 'list' && p.listing.lines < DEFAULT_SIZES.listEntries) {
      throw new Error(`${p.listing.command} ${PATHS.listDir} gave ${p.listing.lines} lines, expected >= ${DEFAULT_SIZES.listEntries}`);
    }
    const big = workload === 'get-big' || workload === 'put-big';
    const clients = workload === 'idle' ? settings.idleSessions : workload === 'many-get' ? settings.manyClients : big ? 1 : settings.clients;
    const listCommand = p.listing.command;
    const srv = running;
    let memBefore = 0;
    let memAfter = 0;
    let memSource = 'pss';
    let idleCpu0 = 0;
    let idleCpu1 = 0;
    let processesAfter = 0;
    if (workload === 'idle') {
      await sleep(2000); // let the probe's session end everywhere
      memBefore = memoryKiB(srv.pids()).kib;
      idleCpu0 = serverCpu(srv);
    }
    const r = await runLoad({
      spec: {
        workload,
        host: HOST,
        port: s.port,
        user: USER,
        password: PASSWORD,
        paths: { ...PATHS, manyFiles: DEFAULT_SIZES.manyFiles },
        sizes: { small: DEFAULT_SIZES.small, big: DEFAULT_SIZES.big, many: DEFAULT_SIZES.many },
        listCommand,
        pipelineLogin: settings.pipelineLogin && p.pipelineLogin,
        tls: server === 'ferry-tls',
        // Below the smallest listen backlog among the servers (vsftpd: 32).
        setupConcurrency: 16,
        setupTimeoutMs: workload === 'idle' ? 600_000 : 120_000,
        opTimeoutMs: big ? 600_000 : workload === 'list' ? 120_000 : workload === 'login' ? 15_000 : 30_000,
      },
      clients,
      generators: settings.generators,
      warmupMs: workload === 'idle' ? 0 : settings.warmupS * 1000,
      durationMs: workload === 'idle' ? 0 : settings.durationS * 1000,
      graceMs: 3000,
      serverCpuSeconds: () => serverCpu(srv),
      afterSetup:
        workload === 'idle'
          ? async () => {
              idleCpu1 = serverCpu(srv);
              await sleep(2000); // settle: lazy allocations, deferred frees
              const pids = srv.pids();
              const m = memoryKiB(pids);
              memAfter = m.kib;
              memSource = m.source;
              processesAfter = m.processes;
            }
          : undefined,
    });

    row.clients = clients;
    row.generators = r.generators;
    row.errors = r.errors;
    row.errorSamples = r.errorSamples;
    const setupNote = r.setup.failed > 0 ? `${r.setup.failed} of ${clients} clients failed to log in (${r.setup.errorSamples.join('; ')})` : '';
    if (workload === 'idle') {
      const sessions = r.setup.opened;
      row.ok = sessions > 0;
      row.figure = sessions > 0 ? (memAfter - memBefore) / sessions : undefined;
      row.serverCpuPerUnit = sessions > 0 ? ((idleCpu1 - idleCpu0) * 1000) / sessions : undefined;
      row.serverCpuPct = undefined;
      row.errors = r.setup.failed;
      row.errorSamples = r.setup.errorSamples;
      row.extra = `${sessions} sessions opened in ${(r.setup.ms / 1000).toFixed(1)} s; ${Math.round(memBefore / 1024)} → ${Math.round(memAfter / 1024)} MiB over ${processesAfter} process(es)${memSource === 'rss' ? ' (RSS: no smaps_rollup)' : ''}`;
      if (!row.ok) row.note = `no session opened: ${r.setup.errorSamples.join('; ')}`;
    } else {
      const perMB = workload === 'get-big' || workload === 'put-big' || workload === 'many-get';
      const mb = r.bytes / 1e6;
      row.windowS = r.windowS;
      row.ops = r.ops;
      row.bytes = r.bytes;
      // A listing takes long under load (all clients progress together), so few
      // complete inside the window: count listings as bytes received / bytes per listing.
      // Less than one listing's worth of bytes is "no listing in the window", not a tiny rate.
      const listings = workload === 'list' ? (r.bytes >= p.listing.bytes ? r.bytes / p.listing.bytes : 0) : r.ops;
      row.figure = perMB ? mb / r.windowS : listings / r.windowS;
      // The workload ran: a zero figure is a result (the server moved nothing in the window).
      row.ok = r.setup.opened > 0 || workload === 'login';
      row.p50Ms = r.hist.count > 0 ? r.hist.quantile(0.5) / 1000 : undefined;
      row.p99Ms = r.hist.count > 0 ? r.hist.quantile(0.99) / 1000 : undefined;
      const units = perMB ? mb : listings;
      const extras: string[] = [];
      row.serverCpuPerUnit = units > 0 ? (r.serverCpuS * 1000) / units : undefined;
      if (workload === 'list' && listings === 0) extras.push(`less than one listing (${Math.round(r.bytes / 1024)} KiB) arrived in the ${r.windowS.toFixed(0)} s window`);
      row.serverCpuPct = (100 * r.serverCpuS) / r.serverWindowS;
      row.genCpuPct = (100 * r.genCpuS) / r.windowS;
      row.genSysPct = (100 * r.genSysS) / r.windowS;
      row.genMaxPct = r.genMaxPct;
      row.machinePct = r.machineBusyPct;
      if (workload === 'list') extras.push(`${listCommand}, ${Math.round(p.listing.bytes / 1024)} KiB per listing, ${r.ops} whole listings in the window`);
      if (perMB && r.ops > 0) extras.push(`${r.ops} whole transfers`);
      // Streaming must not grow with the file: the server's peak memory after 1 GiB transfers says whether it does.
      if (big && server.startsWith('ferry')) extras.push(`peak RSS ${Math.round(peakRssKiB(srv.pids()) / 1024)} MiB`);
      if (workload === 'login' && settings.pipelineLogin) extras.push(p.pipelineLogin ? 'USER+PASS pipelined' : 'no pipelining (refused)');
      if (setupNote) extras.push(setupNote);
      row.extra = extras.join('; ');
      if (!row.ok) row.note = `no client could log in: ${r.setup.errorSamples.slice(0, 3).join('; ') || 'unknown'}`;
      else if (row.figure === 0 && workload !== 'list') extras.push('nothing completed within the window');
      row.extra = extras.join('; ');
    }
  } catch (err) {
    row.ok = false;
    row.note = `failed: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 200).replace(/\|/g, '/')}`;
  } finally {
    await running?.stop().catch(() => {});
    await cleanUploads(s.root).catch(() => {});
  }
  return row;
}

/**
 * Reads the files a workload serves, so every server finds them in the page
 * cache (this machine's cache may have been emptied since the last workload):
 * the benchmark measures servers, not the disk.
 */
async function warmCache(workload: Workload, root: string): Promise<void> {
  const files: string[] = [];
  if (workload === 'get-small' || workload === 'idle' || workload === 'login') files.push(join(root, PATHS.small));
  if (workload === 'get-big') files.push(join(root, PATHS.big));
  if (workload === 'many-get') {
    for (let i = 0; i < DEFAULT_SIZES.manyFiles; i++) files.push(join(root, `${PATHS.manyPrefix}${String(i).padStart(3, '0')}.bin`));
  }
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (const f of files) {
    const fh = await open(f, 'r');
    try {
      while ((await fh.read(buf, 0, buf.length, null)).bytesRead > 0);
    } finally {
      await fh.close();
    }
  }
  if (workload === 'list') {
    // Inodes of the big directory (stat of every entry).
    const dir = join(root, PATHS.listDir);
    for (const name of await readdir(dir)) await stat(join(dir, name));
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const began = Date.now();
  const runNotes: string[] = [];
  if (!ferryBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` (npm run bench does)');

  const wantedPeers = servers.filter((s) => PEERS.has(s));
  let peerVersions: Record<string, string> = {};
  if (wantedPeers.length > 0) {
    const manifest = join(BENCH_DIR, '.peers', 'manifest.json');
    if (!existsSync(manifest) || opt('install') === 'true') {
      log('installing the peer servers (bash bench/peers/install.sh)');
      const r = spawnSync('bash', [join(BENCH_DIR, 'peers', 'install.sh')], { stdio: 'inherit', timeout: 600_000 });
      if (r.status !== 0) throw new Error('bench/peers/install.sh failed');
    }
    const { peerVersions: versions } = await import('./peers/peers.js');
    const all = versions() as Record<string, string>;
    peerVersions = Object.fromEntries(wantedPeers.map((p) => [p, all[p] ?? '?']));
  }

  const flags = ferryCliFlags();
  const serverList = servers.filter((s) => s !== 'ferry-n' || flags.has('--workers'));
  if (servers.includes('ferry-n') && !flags.has('--workers')) runNotes.push('Ferry (N workers): pending — this build has no --workers flag.');
  if (!flags.has('--max-connections-per-ip')) {
    runNotes.push("This Ferry build has no --max-connections-per-ip flag: its default limit (32 per IP) refuses clients beyond 32; expect errors with more clients.");
  }

  log(`data set under ${DATA_ROOT}`);
  await prepareData(DATA_ROOT, DEFAULT_SIZES, log);

  const blocks = await allocatePorts(HOST, serverList.length, PASSIVE_PORTS);
  const settingsFor = new Map<string, ServerSettings>();
  serverList.forEach((server, i) => {
    const b = blocks[i]!;
    settingsFor.set(server, {
      root: DATA_ROOT,
      host: HOST,
      port: b.port,
      passivePorts: b.passivePorts,
      user: USER,
      password: PASSWORD,
      workdir: join(WORK_ROOT, server),
    });
  });
  for (const s of settingsFor.values()) await mkdir(s.workdir, { recursive: true });
  log(`servers: ${serverList.map((s) => `${label(s)} :${settingsFor.get(s)!.port}`).join(', ')}`);
  log(`workloads: ${workloads.join(', ')}; ${settings.durationS} s each after ${settings.warmupS} s warm-up`);

  const rows: Row[] = [];
  for (const server of servers) if (!serverList.includes(server)) for (const w of workloads) rows.push({ workload: w, server, label: label(server), ok: false, note: 'pending (no --workers flag yet)' });
  for (const w of workloads) {
    for (const server of serverList) {
      // Durability only matters for uploads: the like-for-like row with the peers.
      if (server === 'ferry-nofsync' && w !== 'put-small' && w !== 'put-big') continue;
      if (server === 'ferry-tls' && !TRANSFER_WORKLOADS.has(w)) continue;
      if (server === 'ferry-s3' && !TRANSFER_WORKLOADS.has(w)) continue;
      if (server === 'ferry-limited' && !LIMITED_WORKLOADS.has(w)) continue;
      const row = await measure(w, server, settingsFor.get(server)!);
      rows.push(row);
      const info = WORKLOAD_INFO[w];
      if (row.ok) {
        const p = row.p50Ms !== undefined ? ` p50 ${row.p50Ms.toFixed(2)} ms p99 ${row.p99Ms!.toFixed(2)} ms` : '';
        const gen = row.genCpuPct !== undefined ? ` gen CPU ${row.genCpuPct.toFixed(0)}% (sys ${row.genSysPct!.toFixed(0)}%)` : '';
        const srv = row.serverCpuPct !== undefined ? ` server CPU ${row.serverCpuPct.toFixed(0)}% machine ${row.machinePct!.toFixed(0)}%` : '';
        log(`${w.padEnd(9)} ${row.label.padEnd(18)} ${row.figure!.toFixed(1)} ${info.unit}${p}${srv}${gen} errors ${row.errors ?? 0}${row.extra ? ` (${row.extra})` : ''}`);
      } else {
        log(`${w.padEnd(9)} ${row.label.padEnd(18)} ${row.note}`);
      }
      await sleep(500);
    }
  }

  const order = new Map(ALL_SERVERS.map((s, i) => [s as string, i]));
  rows.sort((a, b) => order.get(a.server)! - order.get(b.server)!);
  const elapsedS = (Date.now() - began) / 1000;
  runNotes.push(...passwordNotes(servers));
  const md = renderResults(machineInfo(peerVersions), settings, workloads, rows, elapsedS, runNotes);
  await mkdir(join(outFile, '..'), { recursive: true });
  await writeFile(outFile, md + '\n');
  await writeFile(join(BENCH_DIR, '.peers', 'results.json'), JSON.stringify({ settings, rows }, null, 2));
  log(`wrote ${relative(process.cwd(), outFile)} in ${(elapsedS / 60).toFixed(1)} min`);
}

function passwordNotes(list: readonly string[]): string[] {
  const notes: string[] = [];
  const desc: Record<string, string> = {
    ferry: 'Ferry: --user password kept as a scrypt hash; successful verifications are cached, so repeated logins skip scrypt',
    vsftpd: 'vsftpd: PAM pam_unix against /etc/shadow (yescrypt) on every login, in a forked process per session',
    'pure-ftpd': 'pure-ftpd: PureDB virtual user with a yescrypt hash on every login, forked process per session',
    pyftpdlib: 'pyftpdlib: scrypt (N=16384) on every login, synchronously in its single event loop',
    'ftp-srv': 'ftp-srv: scrypt (N=16384) on every login, async on the libuv thread pool',
  };
  const parts = list.filter((s) => s !== 'ferry-n').map((s) => desc[s]).filter(Boolean);
  if (parts.length > 1) notes.push(`Password checks differ, and dominate the login and idle (setup) figures: ${parts.join('; ')}.`);
  return notes;
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopBenchS3());
