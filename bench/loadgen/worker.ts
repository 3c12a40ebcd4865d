/**
 * One generator process. Forked by run-load.ts; talks to it over IPC:
 *   setup  -> opens and (for most workloads) logs in its clients, answers 'ready'
 *   go     -> runs the workload from startNs; counts from measureNs to endNs;
 *             then lets operations in flight finish (graceMs), quits, answers 'result'
 *   exit   -> leaves
 * Everything here is raw node:net: no FTP library, one static receive buffer
 * shared by every data socket (bytes are counted, not kept), one payload
 * buffer reused for every upload.
 */
import net from 'node:net';
import tls from 'node:tls';
import { Control, epsvPort, FtpError } from './control.js';
import { Histogram } from './histogram.js';
import type { FromWorker, ToWorker, WorkerSpec } from './types.js';

const now = process.hrtime.bigint;
/** Longest a single login may take while setting clients up (then it is retried, up to 3 times). */
const SETUP_ATTEMPT_MS = 20_000;

let spec: WorkerSpec;
const hist = new Histogram();
let ops = 0;
let bytes = 0;
let errors = 0;
const errorSamples: string[] = [];
/** True from measureNs to endNs: operations completing then are counted. */
let measuring = false;
/** True once endNs has passed: no new operations start. */
let stopping = false;
const clients: Client[] = [];

/** Receive buffer for every data socket: data is counted and dropped, never copied. */
const SINK = Buffer.allocUnsafe(256 * 1024);
/** Upload payload, made once. */
let payload: Buffer = Buffer.alloc(0);

function send(message: FromWorker): void {
  process.send!(message);
}

function noteError(err: unknown): void {
  if (stopping) return; // errors caused by the end of the run itself do not count
  errors++;
  if (errorSamples.length < 8) {
    const msg = err instanceof Error ? err.message : String(err);
    if (!errorSamples.includes(msg)) errorSamples.push(msg);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

class Client {
  ctl: Control | null = null;
  data: net.Socket | null = null;
  /** When the running operation started (ns), 0n when idle: the watchdog reads it. */
  opStarted = 0n;
  /** Logged in during setup. */
  ready = false;
  constructor(readonly index: number) {}

  kill(): void {
    this.data?.destroy();
    this.data = null;
    this.ctl?.destroy();
    this.ctl = null;
  }
}

// ---------------------------------------------------------------- protocol steps

function connectControl(): Control {
  return Control.connect(spec.host, spec.port);
}

async function login(ctl: Control): Promise<void> {
  await ctl.want(220, 'greeting');
  if (spec.pipelineLogin) {
    ctl.send(`USER ${spec.user}\r\nPASS ${spec.password}\r\n`);
    await ctl.want(331, 'USER');
  } else {
    ctl.send(`USER ${spec.user}\r\n`);
    await ctl.want(331, 'USER');
    ctl.send(`PASS ${spec.password}\r\n`);
  }
  await ctl.want(2, 'PASS');
}

/** Connect, log in, binary type: a client ready for transfers. */
async function openSession(c: Client): Promise<void> {
  const ctl = connectControl();
  c.ctl = ctl;
  if (spec.tls) {
    await ctl.want(220, 'greeting');
    ctl.send('AUTH TLS\r\n');
    await ctl.want(234, 'AUTH TLS');
    await ctl.startTls();
    ctl.send(`USER ${spec.user}\r\n`);
    await ctl.want(331, 'USER');
    ctl.send(`PASS ${spec.password}\r\nPBSZ 0\r\nPROT P\r\n`);
    await ctl.want(2, 'PASS');
    await ctl.want(200, 'PBSZ');
    await ctl.want(200, 'PROT P');
  } else {
    await login(ctl);
  }
  ctl.send('TYPE I\r\n');
  await ctl.want(200, 'TYPE I');
}

/** EPSV; then the data connection is opened while `command` is sent. */
async function openData(c: Client, command: string): Promise<net.Socket> {
  const ctl = c.ctl!;
  ctl.send('EPSV\r\n');
  const port = epsvPort(await ctl.want(229, 'EPSV'));
  const data = spec.tls ? tlsData(port, ctl.tlsSession) : net.connect({ host: spec.host, port, onread: { buffer: SINK, callback: onDataRead } });
  data.setNoDelay(true);
  c.data = data;
  ctl.send(command);
  return data;
}

function onDataRead(n: number): boolean {
  bytes += n;
  return true;
}

/** Plaintext bytes received on a TLS data socket (bytesRead counts the encrypted ones). */
const tlsReceived = new WeakMap<net.Socket, number>();

/**
 * A TLS data connection resuming the control session. TLS sockets have no
 * `onread`: each decrypted chunk arrives as a Buffer, counted and dropped.
 */
function tlsData(port: number, session: Buffer | undefined): tls.TLSSocket {
  const data = tls.connect({ host: spec.host, port, session, rejectUnauthorized: false });
  tlsReceived.set(data, 0);
  data.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    tlsReceived.set(data, tlsReceived.get(data)! + chunk.length);
  });
  return data;
}

/** Resolves with the number of bytes received when the server closes the data connection. */
function drainData(data: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    data.once('end', () => resolve(tlsReceived.get(data) ?? data.bytesRead));
    data.once('error', reject);
    data.once('close', () => reject(new FtpError('data connection closed before end')));
  });
}

async function download(c: Client, command: string, expectBytes: number, minBytes = 0): Promise<void> {
  const data = await openData(c, command);
  const received = drainData(data);
  received.catch(() => {}); // awaited below; must not count as unhandled meanwhile
  const ctl = c.ctl!;
  try {
    await ctl.want(1, command.trim());
    await ctl.want(2, `${command.trim()} (end)`);
    const n = await received;
    if (expectBytes >= 0 && n !== expectBytes) throw new FtpError(`${command.trim()}: got ${n} bytes, expected ${expectBytes}`);
    if (n < minBytes) throw new FtpError(`${command.trim()}: got ${n} bytes, expected at least ${minBytes}`);
  } finally {
    data.destroy();
    c.data = null;
  }
}

async function upload(c: Client, path: string, size: number): Promise<void> {
  const data = await openData(c, `STOR ${path}\r\n`);
  const ctl = c.ctl!;
  let failed: Error | null = null;
  data.once('error', (err) => (failed = err));
  try {
    await ctl.want(1, 'STOR');
    if (size <= payload.length) {
      bytes += size;
      data.end(size === payload.length ? payload : payload.subarray(0, size));
    } else {
      await pump(data, size);
    }
    await ctl.want(2, 'STOR (end)');
    if (failed) throw failed;
  } finally {
    c.data = null;
    // The server closes its side after reading our end; do not wait for it.
    data.destroySoon();
  }
}

/** Writes `size` bytes of the payload, respecting backpressure, then ends. */
function pump(data: net.Socket, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = size;
    const onClose = () => reject(new FtpError(`STOR: data connection closed with ${left} bytes unsent`));
    data.once('close', onClose);
    data.once('error', reject);
    const write = (): void => {
      while (left > 0) {
        if (stopping) {
          // The run is over: do not push the rest of a big file.
          data.destroy();
          return;
        }
        const n = left < payload.length ? left : payload.length;
        left -= n;
        bytes += n;
        if (!data.write(n === payload.length ? payload : payload.subarray(0, n))) {
          data.once('drain', write);
          return;
        }
      }
      data.off('close', onClose);
      data.end();
      resolve();
    };
    write();
  });
}

// ---------------------------------------------------------------- workloads

const pad3 = (n: number) => String(n).padStart(3, '0');

function operationFor(c: Client): () => Promise<void> {
  const p = spec.paths;
  const s = spec.sizes;
  switch (spec.workload) {
    case 'get-small':
      return () => download(c, `RETR ${p.small}\r\n`, s.small);
    case 'put-small': {
      const path = `${p.uploadDir}/small-${c.index}.bin`;
      return () => upload(c, path, s.small);
    }
    case 'get-big':
      return () => download(c, `RETR ${p.big}\r\n`, s.big);
    case 'put-big': {
      const path = `${p.uploadDir}/big-${c.index}.bin`;
      return () => upload(c, path, s.big);
    }
    case 'list':
      // 10,000 entries: even terse LIST lines are > 20 bytes each.
      return () => download(c, `${spec.listCommand} ${p.listDir}\r\n`, -1, 200_000);
    case 'many-get': {
      const path = `${p.manyPrefix}${pad3(c.index % p.manyFiles)}.bin`;
      return () => download(c, `RETR ${path}\r\n`, s.many);
    }
    default:
      throw new Error(`no transfer operation for ${spec.workload}`);
  }
}

/** One login session: connect, greeting, USER/PASS, QUIT, and the server closes. */
async function loginOnce(c: Client): Promise<void> {
  const ctl = connectControl();
  c.ctl = ctl;
  await login(ctl);
  ctl.send('QUIT\r\n');
  await ctl.want(2, 'QUIT');
  // Let the server close first, so TIME_WAIT stays on its side and the
  // generator does not run out of ephemeral ports.
  if (!ctl.closed) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ctl.destroy();
        resolve();
      }, 2000);
      ctl.socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  c.ctl = null;
}

function record(started: bigint): void {
  if (!measuring) return;
  ops++;
  hist.record(Number(now() - started) / 1000);
}

async function transferLoop(c: Client): Promise<void> {
  const op = operationFor(c);
  while (!stopping) {
    if (!c.ctl || c.ctl.closed) {
      try {
        await openSession(c);
      } catch (err) {
        noteError(err);
        c.kill();
        await sleep(100);
        continue;
      }
    }
    await timed(c, op);
  }
}

async function loginLoop(c: Client): Promise<void> {
  while (!stopping) await timed(c, () => loginOnce(c));
}

/** One measured operation: its latency recorded on success; on failure the error counted and the connection dropped. */
async function timed(c: Client, op: () => Promise<void>): Promise<void> {
  const started = now();
  c.opStarted = started;
  try {
    await op();
    c.opStarted = 0n;
    record(started);
  } catch (err) {
    c.opStarted = 0n;
    noteError(err);
    c.kill();
    if (!stopping) await sleep(20);
  }
}

async function quit(c: Client): Promise<void> {
  const ctl = c.ctl;
  if (!ctl || ctl.closed) return c.kill();
  c.data?.destroy();
  ctl.send('QUIT\r\n');
  await Promise.race([ctl.expect().catch(() => undefined), sleep(1000)]);
  c.kill();
}

// ---------------------------------------------------------------- phases

async function setup(): Promise<void> {
  const started = Date.now();
  const deadline = started + spec.setupTimeoutMs;
  payload = Buffer.alloc(spec.workload === 'put-big' ? 1024 * 1024 : Math.max(spec.sizes.small, 1), 0x5a);
  for (let i = 0; i < spec.clients; i++) clients.push(new Client(spec.firstClient + i));
  let opened = 0;
  let failed = 0;
  const samples: string[] = [];
  if (spec.workload !== 'login') {
    let next = 0;
    const lane = async () => {
      while (next < clients.length && Date.now() < deadline) {
        const c = clients[next++]!;
        // A connection the server never accepts (its accept queue overflowed while the
        // client saw the handshake complete) would wait for a greeting forever: retry.
        for (let attempt = 1; ; attempt++) {
          let timer: NodeJS.Timeout | undefined;
          try {
            await Promise.race([
              openSession(c),
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => reject(new FtpError(`login took over ${SETUP_ATTEMPT_MS} ms`)), SETUP_ATTEMPT_MS);
              }),
            ]);
            c.ready = true;
            opened++;
            break;
          } catch (err) {
            c.kill();
            const msg = err instanceof Error ? err.message : String(err);
            if (samples.length < 5 && !samples.includes(msg)) samples.push(msg);
            if (attempt >= 3 || Date.now() >= deadline) {
              failed++;
              break;
            }
          } finally {
            clearTimeout(timer);
          }
        }
      }
    };
    const setupTimer = setTimeout(() => {
      for (const c of clients) if (!c.ready) c.kill();
    }, spec.setupTimeoutMs + 1000);
    await Promise.all(Array.from({ length: Math.min(spec.setupConcurrency, clients.length) }, lane));
    clearTimeout(setupTimer);
  } else {
    opened = clients.length;
  }
  send({ type: 'ready', opened, failed, setupMs: Date.now() - started, errorSamples: samples });
}

async function go(startNs: bigint, measureNs: bigint, endNs: bigint, graceMs: number): Promise<void> {
  const delayMs = (t: bigint) => Math.max(0, Number(t - now()) / 1e6);
  await sleep(delayMs(startNs));

  let cpuStart = process.cpuUsage();
  let windowStart = now();
  let opsAtStart = 0;
  let bytesAtStart = 0;
  const windowOpened = new Promise<void>((resolve) =>
    setTimeout(() => {
      cpuStart = process.cpuUsage();
      windowStart = now();
      ops = 0;
      opsAtStart = 0;
      bytesAtStart = bytes;
      errors = 0;
      errorSamples.length = 0;
      measuring = true;
      resolve();
    }, delayMs(measureNs)),
  );
  let result!: Omit<Extract<FromWorker, { type: 'result' }>, 'type'>;
  const windowClosed = new Promise<void>((resolve) =>
    setTimeout(() => {
      measuring = false;
      stopping = true;
      const cpu = process.cpuUsage(cpuStart);
      result = {
        ops: ops - opsAtStart,
        bytes: bytes - bytesAtStart,
        errors,
        errorSamples: [...errorSamples],
        hist: hist.toSparse(),
        histMax: hist.max,
        cpuUs: cpu.user + cpu.system,
        cpuSysUs: cpu.system,
        windowNs: Number(now() - windowStart),
      };
      resolve();
    }, delayMs(endNs)),
  );

  // Watchdog: an operation stuck past the timeout is cut (and counted as an error).
  const watchdog = setInterval(() => {
    const limit = now() - BigInt(spec.opTimeoutMs) * 1_000_000n;
    for (const c of clients) {
      if (c.opStarted !== 0n && c.opStarted < limit) {
        noteError(new FtpError(`operation timed out after ${spec.opTimeoutMs} ms`));
        c.kill();
      }
    }
  }, 250);

  let loops: Promise<void>[] = [];
  if (spec.workload === 'idle') {
    loops = [];
  } else if (spec.workload === 'login') {
    loops = clients.map((c) => loginLoop(c));
  } else {
    loops = clients.map((c) => transferLoop(c));
  }
  await windowOpened;
  await windowClosed;
  // Operations in flight may finish (uncounted) so servers see clean ends; then cut.
  const big = spec.workload === 'get-big' || spec.workload === 'put-big';
  const cut = setTimeout(() => {
    for (const c of clients) c.kill();
  }, big ? 0 : graceMs);
  await Promise.all(loops);
  clearTimeout(cut);
  clearInterval(watchdog);
  await Promise.all(clients.map((c) => quit(c)));
  send({ type: 'result', ...result });
}

process.on('message', (msg: ToWorker) => {
  const run = async () => {
    if (msg.type === 'setup') {
      spec = msg.spec;
      await setup();
    } else if (msg.type === 'go') {
      await go(BigInt(msg.startNs), BigInt(msg.measureNs), BigInt(msg.endNs), msg.graceMs);
    } else if (msg.type === 'exit') {
      for (const c of clients) c.kill();
      process.disconnect?.();
      setTimeout(() => process.exit(0), 50).unref();
    }
  };
  run().catch((err: unknown) => {
    send({ type: 'fatal', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});
process.on('disconnect', () => process.exit(0));
