/**
 * The servers the benchmark runs: Ferry (its CLI as a child process, 1 worker
 * or N workers) and the peers of bench/peers/peers.ts, behind one shape.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processTree } from './loadgen/procstat.js';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = dirname(BENCH_DIR);
const FERRY_CLI = join(REPO_DIR, 'dist', 'cli', 'main.js');

export interface ServerSettings {
  root: string;
  host: string;
  port: number;
  passivePorts: [number, number];
  user: string;
  password: string;
  workdir: string;
}

export interface RunningServer {
  name: string;
  /** Every live process of the server. */
  pids(): number[];
  /** The processes whose trees hold the whole server (for CPU: their reaped children count too). */
  roots(): number[];
  stop(): Promise<void>;
}

let helpText: string | undefined;
/** Flags the built CLI understands (it is changing under us: ask it). */
export function ferryCliFlags(): Set<string> {
  helpText ??= execFileSync(process.execPath, [FERRY_CLI, '--help'], { encoding: 'utf8' });
  return new Set(helpText.match(/--[a-z][a-z-]*/g) ?? []);
}

export function ferryBuilt(): boolean {
  return existsSync(FERRY_CLI);
}

const liveFerries = new Set<number>();
process.on('exit', () => {
  for (const leader of liveFerries) killTree(leader, 'SIGKILL');
});

function killTree(leader: number, signal: NodeJS.Signals): void {
  for (const pid of processTree(leader)) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

/** Starts `ferry serve` and resolves once it prints its ftp:// line. */
export async function startFerry(s: ServerSettings, workers: number, extraFlags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningServer> {
  const flags = ferryCliFlags();
  const args = [
    FERRY_CLI,
    '--root', s.root,
    '--host', s.host,
    '--port', String(s.port),
    '--passive-ports', `${s.passivePorts[0]}-${s.passivePorts[1]}`,
    '--user', `${s.user}:${s.password}`,
    '--write',
    '--log-level', 'warn',
  ];
  if (workers > 1) {
    if (!flags.has('--workers')) throw new Error('this Ferry build has no --workers flag');
    args.push('--workers', String(workers));
  }
  // Ferry's defaults (512 total, 32 per IP) would refuse the benchmark (idle can open 10,000 sessions).
  if (flags.has('--max-connections')) args.push('--max-connections', '20000');
  if (flags.has('--max-connections-per-ip')) args.push('--max-connections-per-ip', '20000');
  args.push(...extraFlags);

  // BENCH_FERRY_NODE_ARGS go to Ferry's node only, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to profile it under load.
  const nodeArgs = process.env.BENCH_FERRY_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    cwd: s.workdir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '', ...env },
  });
  const leader = child.pid!;
  liveFerries.add(leader);
  let out = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const ready = new Promise<void>((resolve, reject) => {
    const marker = `ftp://${s.user}@${s.host}:${s.port}/`;
    const marker2 = `${s.host}:${s.port}/`;
    const onData = (b: Buffer) => {
      out = (out + b.toString()).slice(-4000);
      if (out.includes(marker) || out.includes(`ftp://${marker2}`)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`ferry exited (${code ?? signal}) before it was ready: ${out.trim()}`)));
    setTimeout(() => reject(new Error(`ferry not ready within 15 s: ${out.trim()}`)), 15_000).unref();
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) {
      killTree(leader, 'SIGKILL');
      liveFerries.delete(leader);
      return;
    }
    const tree = processTree(leader);
    try {
      process.kill(leader, 'SIGTERM');
    } catch {
      /* gone */
    }
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && tree.some(alive)) await new Promise((r) => setTimeout(r, 25));
    for (const pid of tree) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    liveFerries.delete(leader);
  };
  try {
    await ready;
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name: workers > 1 ? `ferry ×${workers}` : 'ferry',
    pids: () => processTree(leader),
    roots: () => [leader],
    stop,
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wraps a peer of bench/peers/peers.ts. */
export async function startPeer(name: string, s: ServerSettings): Promise<RunningServer> {
  const { peers } = await import('./peers/peers.js');
  const start = (peers as Record<string, (o: ServerSettings) => Promise<{ pids(): number[]; stop(): Promise<void> }>>)[name];
  if (!start) throw new Error(`unknown peer ${name}`);
  const peer = await start(s);
  // The tree's roots (processes whose parent is outside it): fixed from now on.
  const pids = peer.pids();
  const set = new Set(pids);
  const roots = pids.filter((pid) => !set.has(parentOf(pid)));
  return {
    name,
    pids: () => peer.pids(),
    roots: () => roots,
    stop: () => peer.stop(),
  };
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}
