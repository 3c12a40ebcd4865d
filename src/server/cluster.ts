/**
 * Cluster mode: one primary process accepts control connections and hands
 * each to one of N worker processes, which run ordinary FtpServers.
 *
 * Why the primary accepts (instead of letting workers share the listener):
 * it sees every connection, so the limits that must be global (connections in
 * total and per IP) are counted in one place, and it can send each new
 * session to the least-loaded worker. Handing a socket over costs one IPC
 * message; Node's own cluster round-robin does the same.
 *
 * Passive ports: each worker gets a disjoint slice of the range, so PASV
 * never announces a port another process owns. Without a range the kernel
 * picks ports and no collision is possible.
 *
 * A worker that dies is replaced (after a short delay, so a worker that
 * cannot start does not fork in a tight loop); the others keep serving.
 * SIGTERM/SIGINT reach every worker as a graceful shutdown, SIGHUP as a
 * reload request, SIGUSR1 as a request to reopen the log files.
 */
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import type { PortRange } from '../data/passive.js';
import type { Logger } from '../observability/logger.js';
import { silentLogger } from '../observability/logger.js';
import { AdmissionGate, refuse, turnAway } from './admission.js';
import { detachForHandoff, ProxyProtocolAcceptor, type Peer, type ProxiedConnection, type ProxyProtocolOptions } from './proxy-protocol.js';
import { listenOn, type FtpServer } from './server.js';

/**
 * Messages between the primary and its workers. A connection whose PROXY
 * protocol header the primary read carries the client (`peer`) and the bytes
 * read past the header (`head`, base64): the socket alone would lose both.
 */
type PrimaryMessage =
  | { type: 'ferry:connection'; id: number; implicitTls?: boolean; peer?: Peer; head?: string }
  | { type: 'ferry:shutdown'; graceMs: number }
  | { type: 'ferry:reload' }
  | { type: 'ferry:reopen-logs' };
type WorkerMessage = { type: 'ferry:closed'; id: number } | { type: 'ferry:ready' };

const RESPAWN_DELAY_MS = 500;

export interface ClusterPrimaryOptions {
  workers: number;
  host: string;
  port: number;
  passivePorts: PortRange | null;
  maxConnections: number;
  maxConnectionsPerIp: number;
  shutdownGraceMs: number;
  /**
   * Also accept implicit FTPS on this port (the FtpServerOptions `tls`
   * value). The primary never touches TLS: it hands the raw socket over and
   * the worker runs the handshake, with the certificate it loaded itself.
   */
  tls?: { implicitPort: number | null } | null;
  /** PROXY protocol on both listeners: the primary reads the header before admitting (server/proxy-protocol.ts). Absent: off. */
  proxyProtocol?: ProxyProtocolOptions;
  logger?: Logger;
  /**
   * Runs after a worker died and before its replacement is forked: the CLI
   * sweeps the temp files of its interrupted uploads (temp-files.ts).
   */
  onWorkerExit?: () => void;
}

/** The passive range of worker `index` of `count`: disjoint, contiguous slices. */
export function passiveSlice(range: PortRange | null, index: number, count: number): PortRange | null {
  if (!range) return null;
  const size = range.max - range.min + 1;
  const min = range.min + Math.floor((index * size) / count);
  const max = range.min + Math.floor(((index + 1) * size) / count) - 1;
  if (max < min) throw new RangeError(`passive range ${range.min}-${range.max} has fewer ports than the ${count} workers`);
  return { min, max };
}

interface WorkerSlot {
  index: number;
  worker: Worker;
  /** True once the worker listens for connections: before that a handed-over socket would be lost. */
  ready: boolean;
  /** Connection id -> the gate's key, for the connections this worker serves. */
  connections: Map<number, string>;
}

export class ClusterPrimary {
  #options: ClusterPrimaryOptions;
  readonly #log: Logger;
  readonly #slots: WorkerSlot[] = [];
  /** The cluster's connection caps and address policies: workers skip their own. */
  readonly gate: AdmissionGate;
  readonly #proxy: ProxyProtocolAcceptor;
  readonly #net: net.Server;
  readonly #implicitNet: net.Server | null;
  #nextId = 1;
  #stopping: Promise<void> | null = null;

  constructor(options: ClusterPrimaryOptions) {
    if (!cluster.isPrimary) throw new Error('ClusterPrimary runs in the primary process only');
    for (let i = 0; i < options.workers; i++) passiveSlice(options.passivePorts, i, options.workers); // validate early
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.gate = new AdmissionGate(options);
    this.#proxy = new ProxyProtocolAcceptor(options.proxyProtocol, this.#log);
    this.#net = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.#dispatch(socket, false));
    this.#implicitNet =
      options.tls?.implicitPort != null ? net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.#dispatch(socket, true)) : null;
  }

  /** Fork the workers, wait until each is ready, then listen. */
  async start(): Promise<net.AddressInfo> {
    await Promise.all(Array.from({ length: this.#options.workers }, (_, index) => this.#fork(index)));
    await listenOn(this.#net, this.#options.port, this.#options.host);
    if (this.#implicitNet) await listenOn(this.#implicitNet, this.#options.tls!.implicitPort!, this.#options.host);
    return this.#net.address() as net.AddressInfo;
  }

  /** The index `worker` was forked with (its `worker` in logs and metrics); null for a worker that is not one of this primary's. */
  indexOf(worker: Worker): number | null {
    return this.#slots.find((slot) => slot?.worker === worker)?.index ?? null;
  }

  /** The implicit-FTPS listener's address, when there is one. */
  implicitAddress(): net.AddressInfo | null {
    return (this.#implicitNet?.address() as net.AddressInfo | null | undefined) ?? null;
  }

  #fork(index: number): Promise<void> {
    const slice = passiveSlice(this.#options.passivePorts, index, this.#options.workers);
    const worker = cluster.fork({
      __FERRY_WORKER_INDEX: String(index),
      __FERRY_WORKER_PASSIVE_PORTS: slice ? `${slice.min}-${slice.max}` : '',
    });
    const slot: WorkerSlot = { index, worker, ready: false, connections: new Map() };
    this.#slots[index] = slot;
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ferry:closed') this.#release(slot, message.id);
    });
    worker.on('exit', (code, signal) => this.#onExit(slot, code, signal));
    // An IPC write to a dying worker fails here; unheard, it would crash the primary.
    worker.on('error', (err) => this.#log.warn({ err, worker: index }, 'worker IPC error'));
    return new Promise((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        if (message.type !== 'ferry:ready') return;
        slot.ready = true;
        worker.off('message', onMessage);
        worker.off('exit', onEarlyExit);
        resolve();
      };
      const onEarlyExit = (code: number) => reject(new Error(`worker ${index} exited with code ${code} before it was ready`));
      worker.on('message', onMessage);
      worker.once('exit', onEarlyExit);
    });
  }

  #onExit(slot: WorkerSlot, code: number | null, signal: string | null): void {
    // Its sessions are gone with it: give their slots back.
    for (const id of [...slot.connections.keys()]) this.#release(slot, id);
    if (this.#stopping || this.#slots[slot.index] !== slot) return;
    this.#log.error({ worker: slot.index, code, signal }, 'worker died; starting a replacement');
    this.#options.onWorkerExit?.();
    setTimeout(() => {
      if (this.#stopping) return;
      this.#fork(slot.index).catch((err: unknown) => this.#log.error({ err, worker: slot.index }, 'replacement worker failed to start'));
    }, RESPAWN_DELAY_MS).unref();
  }

  #dispatch(socket: net.Socket, implicitTls: boolean): void {
    socket.on('error', () => {});
    if (!this.#proxy.enabled) {
      this.#handOver(socket, implicitTls, null);
      return;
    }
    void this.#proxy.accept(socket, implicitTls, this.#options.maxConnections).then((proxied) => {
      if (proxied) this.#handOver(socket, implicitTls, proxied);
    });
  }

  /** Admit a connection (by its client's address, when a header named one) and send it to a worker. */
  #handOver(socket: net.Socket, implicitTls: boolean, proxied: ProxiedConnection | null): void {
    const live = this.#slots.filter((slot) => slot.ready && slot.worker.isConnected());
    if (this.#stopping || live.length === 0) {
      turnAway(socket, implicitTls, this.#stopping ? 'Server shutting down.' : 'No worker is ready; try again later.');
      return;
    }
    const admission = this.gate.admit(proxied?.peer.address ?? socket.remoteAddress ?? '');
    if (!admission.admitted) {
      refuse(socket, implicitTls, admission, this.#log);
      return;
    }
    const { key } = admission;
    // The least-loaded worker gets the new session; ties rotate, so short
    // sessions (a camera's login-upload-quit) spread over every worker too.
    const start = this.#nextId % live.length;
    let slot = live[start]!;
    for (let i = 1; i < live.length; i++) {
      const candidate = live[(start + i) % live.length]!;
      if (candidate.connections.size < slot.connections.size) slot = candidate;
    }
    const id = this.#nextId++;
    slot.connections.set(id, key);
    const message: PrimaryMessage = { type: 'ferry:connection', id, implicitTls };
    if (proxied) {
      // In this tick, right before the send: nothing read here may stay behind.
      const head = Buffer.concat([proxied.head, detachForHandoff(socket)]);
      message.peer = proxied.peer;
      if (head.length > 0) message.head = head.toString('base64');
    }
    slot.worker.send(message, socket, { keepOpen: false }, (err) => {
      if (err) {
        this.#release(slot, id);
        socket.destroy();
      }
    });
  }

  #release(slot: WorkerSlot, id: number): void {
    const key = slot.connections.get(id);
    if (key === undefined) return;
    slot.connections.delete(id);
    this.gate.release(key);
  }

  /**
   * SIGHUP: ask every worker to reload; `limits` are the cluster-wide
   * connection limits from the reloaded configuration, which only the
   * primary enforces.
   */
  reload(limits?: Pick<ClusterPrimaryOptions, 'maxConnections' | 'maxConnectionsPerIp' | 'shutdownGraceMs' | 'proxyProtocol'>): void {
    if (limits) {
      this.#options = { ...this.#options, ...limits };
      this.gate.configure(this.#options);
      this.#proxy.configure(this.#options.proxyProtocol);
    }
    for (const slot of this.#slots) if (slot.worker.isConnected()) slot.worker.send({ type: 'ferry:reload' } satisfies PrimaryMessage);
  }

  /** SIGUSR1 (logrotate): ask every worker to reopen its log files by name. */
  reopenLogs(): void {
    for (const slot of this.#slots) if (slot.worker.isConnected()) slot.worker.send({ type: 'ferry:reopen-logs' } satisfies PrimaryMessage);
  }

  /** Stop accepting, let every worker finish gracefully, resolve when all have exited. */
  stop(graceMs = this.#options.shutdownGraceMs): Promise<void> {
    this.#stopping ??= (async () => {
      this.#net.close();
      this.#implicitNet?.close();
      const exits = this.#slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            if (slot.worker.isDead()) return resolve();
            slot.worker.once('exit', () => resolve());
            // A worker still starting has no message handler yet: it would never hear the request.
            if (!slot.ready) slot.worker.process.kill('SIGKILL'); // it has no sessions yet
            else if (slot.worker.isConnected()) slot.worker.send({ type: 'ferry:shutdown', graceMs } satisfies PrimaryMessage);
            // A worker that does not exit in time is killed.
            setTimeout(() => slot.worker.process.kill('SIGKILL'), graceMs + 5000).unref();
          }),
      );
      await Promise.all(exits);
    })();
    return this.#stopping;
  }
}

export interface WorkerCallbacks {
  onReload?: () => void;
  onReopenLogs?: () => void;
  beforeExit?: () => Promise<unknown>;
}

/**
 * Run `server` as a cluster worker: serve the sockets the primary sends,
 * report when each closes, and obey shutdown and reload requests.
 * `onReload` is called for SIGHUP on the primary, `onReopenLogs` for
 * SIGUSR1, `beforeExit` once the server has closed at shutdown (the
 * daemon's hooks of the last events).
 */
export function runClusterWorker(server: FtpServer, { onReload = () => {}, onReopenLogs = () => {}, beforeExit = async () => {} }: WorkerCallbacks = {}): void {
  if (!cluster.isWorker || !process.send) throw new Error('runClusterWorker runs in a cluster worker only');
  const send = (message: WorkerMessage) => {
    if (process.connected) process.send!(message);
  };
  process.on('message', (message: PrimaryMessage, handle?: net.Socket) => {
    switch (message.type) {
      case 'ferry:connection': {
        if (!handle) {
          // The socket died on the way: give the primary its slot back.
          send({ type: 'ferry:closed', id: message.id });
          return;
        }
        handle.once('close', () => send({ type: 'ferry:closed', id: message.id }));
        const head = message.head === undefined ? undefined : Buffer.from(message.head, 'base64');
        server.handleConnection(handle, { implicitTls: message.implicitTls === true, admitted: true, peer: message.peer, head });
        return;
      }
      case 'ferry:shutdown':
        void server
          .close(message.graceMs)
          .then(beforeExit)
          .finally(() => process.exit(0));
        return;
      case 'ferry:reload':
        onReload();
        return;
      case 'ferry:reopen-logs':
        onReopenLogs();
        return;
    }
  });
  // The primary handles signals for the whole cluster (systemd and terminals
  // signal the whole process group): a worker waits for the primary's
  // graceful shutdown message, which the primary backs with SIGKILL.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  process.on('SIGHUP', () => {});
  send({ type: 'ferry:ready' });
}

/** In a worker: its index and passive slice, as the primary assigned them. */
export function clusterWorkerSettings(): { index: number; passivePorts: string | undefined } {
  return {
    index: Number(process.env.__FERRY_WORKER_INDEX ?? 0),
    passivePorts: process.env.__FERRY_WORKER_PASSIVE_PORTS || undefined,
  };
}
