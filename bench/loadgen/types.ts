/** Messages and settings shared by the orchestrator (run-load.ts) and the generator processes (worker.ts). */

export const WORKLOADS = ['login', 'get-small', 'put-small', 'get-big', 'put-big', 'list', 'many-get', 'idle'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface WorkerSpec {
  workload: Workload;
  host: string;
  port: number;
  user: string;
  password: string;
  /** Clients run by this generator process. */
  clients: number;
  /** Index of this process's first client among all clients (file names, upload names). */
  firstClient: number;
  /** Server-relative paths. */
  paths: {
    small: string;
    big: string;
    listDir: string;
    /** "many/f%03d.bin" style prefix: client i reads `${manyPrefix}${pad3(i % manyFiles)}.bin`. */
    manyPrefix: string;
    manyFiles: number;
    uploadDir: string;
  };
  sizes: { small: number; big: number; many: number };
  /** 'MLSD' or 'LIST' for the list workload. */
  listCommand: 'MLSD' | 'LIST';
  /** Explicit FTPS: AUTH TLS before login, PROT P, data connections resuming the control session. */
  tls: boolean;
  /** Send USER and PASS in one write (only for servers known to accept it). */
  pipelineLogin: boolean;
  /** Concurrent connection attempts while logging clients in before the run. */
  setupConcurrency: number;
  setupTimeoutMs: number;
  /** A single operation taking longer than this is abandoned (counted as an error). */
  opTimeoutMs: number;
}

export type ToWorker =
  | { type: 'setup'; spec: WorkerSpec }
  /** Absolute CLOCK_MONOTONIC times (process.hrtime.bigint) as decimal strings. */
  | { type: 'go'; startNs: string; measureNs: string; endNs: string; graceMs: number }
  | { type: 'exit' };

export interface WorkerResult {
  type: 'result';
  ops: number;
  bytes: number;
  errors: number;
  errorSamples: string[];
  /** Sparse latency histogram (µs) of the operations completed inside the window. */
  hist: Array<[number, number]>;
  histMax: number;
  /** Generator CPU inside the measurement window, µs (process.cpuUsage: user + system). */
  cpuUs: number;
  /** The system (kernel) part of cpuUs, µs. */
  cpuSysUs: number;
  /** Measured window as seen by this process, ns. */
  windowNs: number;
}

export type FromWorker =
  | { type: 'ready'; opened: number; failed: number; setupMs: number; errorSamples: string[] }
  | WorkerResult
  | { type: 'fatal'; message: string };
