/**
 * Runs one workload against one server with G generator processes (worker.ts)
 * and measures it: operations and bytes inside the window, latency
 * percentiles, errors, the generator's own CPU (process.cpuUsage in each
 * generator process) and the server's CPU (/proc, all its processes).
 *
 * Timeline (absolute CLOCK_MONOTONIC times, shared by all processes):
 *   setup (clients connect and log in, not timed)
 *   startNs ........ measureNs ................................ endNs
 *   loops start      warm-up over: counting and CPU window open  window closes, loops stop
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.js';
import { machineTicks } from './procstat.js';
import type { FromWorker, ToWorker, WorkerResult, WorkerSpec } from './types.js';

export interface LoadOptions {
  spec: Omit<WorkerSpec, 'clients' | 'firstClient'>;
  clients: number;
  generators: number;
  warmupMs: number;
  durationMs: number;
  /** How long operations in flight at the end may finish before being cut. */
  graceMs: number;
  /** CPU seconds used so far by the server (all its processes). */
  serverCpuSeconds: () => number;
  /** Called once every client is set up, before the timed run (idle: memory is sampled here). */
  afterSetup?: () => Promise<void>;
}

export interface LoadResult {
  ops: number;
  bytes: number;
  errors: number;
  errorSamples: string[];
  hist: Histogram;
  /** Measured window, seconds (mean over generator processes). */
  windowS: number;
  /** Generator CPU seconds in the window, all processes. */
  genCpuS: number;
  /** Its system (kernel) part. */
  genSysS: number;
  /** Busiest generator process, % of one core. */
  genMaxPct: number;
  generators: number;
  /** Server CPU seconds in the window, all its processes. */
  serverCpuS: number;
  serverWindowS: number;
  /** Whole machine busy during the window, % of all cores (everything: server, generator, kernel, others). */
  machineBusyPct: number;
  setup: { opened: number; failed: number; ms: number; errorSamples: string[] };
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const now = process.hrtime.bigint;

class GeneratorProcess {
  readonly child: ChildProcess;
  readonly #inbox: FromWorker[] = [];
  readonly #waiters: Array<(m: FromWorker) => void> = [];
  #exited = false;
  #stderr = '';

  constructor() {
    this.child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    this.child.stderr?.on('data', (b: Buffer) => (this.#stderr = (this.#stderr + b.toString()).slice(-2000)));
    this.child.on('message', (m: FromWorker) => {
      const w = this.#waiters.shift();
      if (w) w(m);
      else this.#inbox.push(m);
    });
    this.child.on('exit', (code, signal) => {
      this.#exited = true;
      const m: FromWorker = { type: 'fatal', message: `generator exited (${code ?? signal}) ${this.#stderr.trim()}` };
      for (const w of this.#waiters.splice(0)) w(m);
    });
  }

  send(m: ToWorker): void {
    if (!this.#exited) this.child.send(m);
  }

  next(timeoutMs: number, what: string): Promise<FromWorker> {
    const m = this.#inbox.shift();
    if (m) return Promise.resolve(m);
    if (this.#exited) return Promise.resolve({ type: 'fatal', message: `generator exited ${this.#stderr.trim()}` });
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve({ type: 'fatal', message: `generator: no ${what} within ${timeoutMs} ms` });
      }, timeoutMs);
      const done = (msg: FromWorker) => {
        clearTimeout(t);
        resolve(msg);
      };
      this.#waiters.push(done);
    });
  }

  async stop(): Promise<void> {
    if (this.#exited) return;
    this.send({ type: 'exit' });
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, 2000);
      this.child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

function expectType<T extends FromWorker['type']>(m: FromWorker, type: T): Extract<FromWorker, { type: T }> {
  if (m.type === type) return m as Extract<FromWorker, { type: T }>;
  if (m.type === 'fatal') throw new Error(m.message);
  throw new Error(`generator sent ${m.type}, expected ${type}`);
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const g = Math.max(1, Math.min(o.generators, o.clients));
  const procs = Array.from({ length: g }, () => new GeneratorProcess());
  try {
    // Setup: split the clients among the processes.
    let first = 0;
    for (let i = 0; i < g; i++) {
      const clients = Math.floor(o.clients / g) + (i < o.clients % g ? 1 : 0);
      procs[i]!.send({ type: 'setup', spec: { ...o.spec, clients, firstClient: first } });
      first += clients;
    }
    const readies = await Promise.all(procs.map((p) => p.next(o.spec.setupTimeoutMs + 15_000, 'setup')));
    const setup = { opened: 0, failed: 0, ms: 0, errorSamples: [] as string[] };
    for (const m of readies) {
      const r = expectType(m, 'ready');
      setup.opened += r.opened;
      setup.failed += r.failed;
      setup.ms = Math.max(setup.ms, r.setupMs);
      for (const s of r.errorSamples) if (!setup.errorSamples.includes(s)) setup.errorSamples.push(s);
    }
    await o.afterSetup?.();

    // Timed run.
    const startNs = now() + 200_000_000n;
    const measureNs = startNs + BigInt(o.warmupMs) * 1_000_000n;
    const endNs = measureNs + BigInt(o.durationMs) * 1_000_000n;
    for (const p of procs) {
      p.send({ type: 'go', startNs: String(startNs), measureNs: String(measureNs), endNs: String(endNs), graceMs: o.graceMs });
    }
    const at = (t: bigint) => new Promise<void>((r) => setTimeout(r, Math.max(0, Number(t - now()) / 1e6)));
    await at(measureNs);
    const cpu0 = o.serverCpuSeconds();
    const m0 = machineTicks();
    const t0 = now();
    await at(endNs);
    const cpu1 = o.serverCpuSeconds();
    const m1 = machineTicks();
    const t1 = now();

    const results = await Promise.all(procs.map((p) => p.next(o.graceMs + 30_000, 'result')));
    const hist = new Histogram();
    const out: LoadResult = {
      ops: 0,
      bytes: 0,
      errors: 0,
      errorSamples: [],
      hist,
      windowS: 0,
      genCpuS: 0,
      genSysS: 0,
      genMaxPct: 0,
      generators: g,
      serverCpuS: cpu1 - cpu0,
      serverWindowS: Number(t1 - t0) / 1e9,
      machineBusyPct: m1.total > m0.total ? (100 * (m1.busy - m0.busy)) / (m1.total - m0.total) : NaN,
      setup,
    };
    for (const m of results) {
      const r: WorkerResult = expectType(m, 'result');
      out.ops += r.ops;
      out.bytes += r.bytes;
      out.errors += r.errors;
      for (const s of r.errorSamples) if (out.errorSamples.length < 8 && !out.errorSamples.includes(s)) out.errorSamples.push(s);
      hist.merge(Histogram.fromSparse(r.hist, r.histMax));
      const windowS = r.windowNs / 1e9;
      out.windowS += windowS / g;
      out.genCpuS += r.cpuUs / 1e6;
      out.genSysS += r.cpuSysUs / 1e6;
      out.genMaxPct = Math.max(out.genMaxPct, (100 * r.cpuUs) / 1e6 / windowS);
    }
    return out;
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}
