/**
 * Password hashes and the cache of recent verifications.
 *
 * New hashes are scrypt (node:crypto, run on libuv's thread pool so the event
 * loop keeps serving), stored as `$scrypt$ln=15,r=8,p=1$<salt>$<key>` (base64,
 * no padding). bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2id (`$argon2id$`)
 * hashes are verified too, so accounts can be imported from other servers
 * (see foreign-hash.ts). Verifying is deliberately slow, and FTP devices log in again
 * and again, so `VerificationCache` remembers recent successes for a short
 * time. Its keys are HMACs under a random per-process secret of
 * (username, password, stored hash): the cache never holds a password or an
 * unsalted hash of one, a changed stored hash misses by construction, and the
 * secret never leaves memory.
 */
import { createHmac, randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { foreignScheme, verifyForeignHash } from './foreign-hash.js';

const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** log2 of scrypt's N: 2^15 costs ~32 MiB and tens of milliseconds on one core. */
const DEFAULT_LOG_N = 15;

function scrypt(password: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

interface ParsedHash {
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

const HASH_FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function parseHash(hash: string): ParsedHash | null {
  const m = HASH_FORMAT.exec(hash);
  if (!m) return null;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Bounded cost (a hostile or mistyped hash must not cost seconds or gigabytes)...
  if (logN < 10 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  // ...and a real key: a truncated one (0 bytes decode from "A") would match anything.
  if (salt.length < 8 || key.length < 16) return null;
  return { logN, r, p, salt, key };
}

function scryptOptions(logN: number, r: number, p: number): ScryptOptions {
  // maxmem must cover 128 * N * r bytes, with room to spare.
  return { N: 2 ** logN, r, p, maxmem: 256 * 2 ** logN * r + 1024 * 1024 };
}

/** A scrypt, bcrypt or argon2id hash in a form this module verifies (with bounded cost). */
export function isPasswordHash(value: string): boolean {
  return parseHash(value) !== null || foreignScheme(value) !== null;
}

export async function hashPassword(password: string, logN = DEFAULT_LOG_N): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_BYTES, scryptOptions(logN, 8, 1));
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=${logN},r=8,p=1$${b64(salt)}$${b64(key)}`;
}

/** Constant-time check of `password` against a stored hash; false for a malformed hash. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parseHash(hash);
  if (!parsed) {
    const scheme = foreignScheme(hash);
    return scheme ? verifyForeignHash(scheme, password, hash) : false;
  }
  const key = await scrypt(password, parsed.salt, parsed.key.length, scryptOptions(parsed.logN, parsed.r, parsed.p));
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

export interface VerificationCacheOptions {
  /** How long a verified login is remembered. Default 5 minutes. */
  ttlMs?: number;
  /** Most entries kept; the oldest go first. Default 10,000. */
  maxEntries?: number;
}

/** A bounded, expiring memory of successful verifications (see the module comment). */
export class VerificationCache {
  readonly #secret = randomBytes(32);
  readonly ttlMs: number;
  readonly #maxEntries: number;
  /** Insertion order is age order, so the first key is the oldest. */
  readonly #entries = new Map<string, number>();

  constructor(options: VerificationCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  #key(username: string, password: string, hash: string): string {
    // JSON keeps the fields apart whatever they contain (NUL included).
    return createHmac('sha256', this.#secret).update(JSON.stringify([username, password, hash])).digest('base64');
  }

  /** Verify through the cache: a hit costs one HMAC, a miss one scrypt. */
  async verify(username: string, password: string, hash: string): Promise<boolean> {
    const key = this.#key(username, password, hash);
    const expires = this.#entries.get(key);
    if (expires !== undefined) {
      if (expires > Date.now()) return true;
      this.#entries.delete(key);
    }
    if (!(await verifyPassword(password, hash))) return false;
    this.#entries.set(key, Date.now() + this.ttlMs);
    if (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    return true;
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}
