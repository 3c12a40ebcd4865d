/**
 * bcrypt and argon2id verification, for accounts imported from other servers
 * (vsftpd/PAM, pure-ftpd, SFTPGo, ProFTPD setups keep such hashes).
 *
 * node:crypto has neither, so hash-wasm (WebAssembly, no native build)
 * computes them. WebAssembly runs synchronously on the thread that calls it,
 * and one verification costs tens of milliseconds by design, so it runs on a
 * worker thread: other sessions keep being served while a hash is checked.
 * The worker is created on first use and unref'd while idle.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export type ForeignScheme = 'bcrypt' | 'argon2id';

// Costs are bounded so that a mistyped or hostile hash cannot cost seconds or gigabytes.
const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const ARGON2ID = /^\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,2}),p=(\d{1,2})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{22,}$/;

export function foreignScheme(hash: string): ForeignScheme | null {
  const bcrypt = BCRYPT.exec(hash);
  // Cost 13 is ~0.5 s in WebAssembly; more would let a few wrong passwords stall every imported user's login.
  if (bcrypt) return Number(bcrypt[1]) >= 4 && Number(bcrypt[1]) <= 13 ? 'bcrypt' : null;
  const argon = ARGON2ID.exec(hash);
  if (argon) {
    const [m, t, p] = [Number(argon[1]), Number(argon[2]), Number(argon[3])];
    // m is in KiB: up to 64 MiB and 8 passes per verification (common settings use 19-64 MiB, 2-3 passes).
    return m >= 8 && m <= 65_536 && t >= 1 && t <= 8 && p >= 1 && p <= 16 ? 'argon2id' : null;
  }
  return null;
}

// CommonJS run with `eval: true`, so there is no file to locate from dist/ or tsx; hash-wasm is resolved here.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const wasm = require(workerData.hashWasm);
parentPort.on('message', async ({ id, scheme, password, hash }) => {
  let ok = false;
  try {
    ok = scheme === 'bcrypt' ? await wasm.bcryptVerify({ password, hash }) : await wasm.argon2Verify({ password, hash });
  } catch {
    ok = false;
  }
  parentPort.postMessage({ id, ok });
});
`;

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, (ok: boolean) => void>();

function thread(): Worker {
  if (worker) return worker;
  const created = new Worker(WORKER_SOURCE, { eval: true, workerData: { hashWasm: createRequire(import.meta.url).resolve('hash-wasm') } });
  created.unref();
  created.on('message', ({ id, ok }: { id: number; ok: boolean }) => {
    pending.get(id)?.(ok);
    pending.delete(id);
    if (pending.size === 0) created.unref();
  });
  const fail = () => {
    if (worker === created) worker = null;
    // A dead verifier rejects every login in flight rather than hanging it.
    for (const resolve of pending.values()) resolve(false);
    pending.clear();
  };
  created.on('error', fail);
  created.on('exit', fail);
  worker = created;
  return created;
}

/** Verify a bcrypt or argon2id hash off the event loop; false for a mismatch or a malformed hash. */
export function verifyForeignHash(scheme: ForeignScheme, password: string, hash: string): Promise<boolean> {
  return new Promise((resolve) => {
    const id = nextId++;
    const verifier = thread();
    pending.set(id, resolve);
    verifier.ref();
    verifier.postMessage({ id, scheme, password, hash });
  });
}
