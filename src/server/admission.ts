/**
 * The admission gate: whether a new control connection may be served at
 * all, decided before the greeting. One gate for both ways Ferry runs: the
 * single-process server's listener and the cluster primary, which accepts
 * for all its workers (workers then skip it). It counts connections in
 * total and per address (IPv6 by /64, see limitKey) and asks the policies
 * plugged into it (the defender's deny list and bans) about the address.
 */
import net from 'node:net';
import type { Logger } from '../observability/logger.js';
import { limitKey, normalizeAddress } from '../protocol/address.js';
import { formatReply } from '../protocol/reply.js';

// The key addresses are counted by: in protocol/ so the policies below the gate (the defender) share it.

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/** A policy consulted for every new connection: why the address is refused (the text after 421), or null. */
export type AddressCheck = (address: string) => string | null;

/** Told of each connection refused by a count (the defender scores the per-address ones). */
export type RefusalListener = (address: string, reason: 'total' | 'per-ip') => void;

export type Admission =
  | { admitted: true; address: string; key: string }
  | { admitted: false; address: string; reason: 'total' | 'per-ip' | 'refused'; detail: string };

export class AdmissionGate {
  #limits: AdmissionLimits;
  readonly #checks: AddressCheck[] = [];
  readonly #refusals: RefusalListener[] = [];
  readonly #perKey = new Map<string, number>();
  #total = 0;

  constructor(limits: AdmissionLimits) {
    this.#limits = { ...limits };
  }

  /** New limits (a reload); connections already admitted stay. */
  configure(limits: AdmissionLimits): void {
    this.#limits = { ...limits };
  }

  /** Plug in a policy (the defender's bans, a deny list); checked in the order added, before the counts. */
  addCheck(check: AddressCheck): void {
    this.#checks.push(check);
  }

  /** Hear of connections refused by the counts. */
  onRefused(listener: RefusalListener): void {
    this.#refusals.push(listener);
  }

  get total(): number {
    return this.#total;
  }

  /** Admit a connection from `remoteAddress` (counted until `release(key)`), or say why not. */
  admit(remoteAddress: string): Admission {
    const address = normalizeAddress(remoteAddress);
    for (const check of this.#checks) {
      const detail = check(address);
      if (detail !== null) return { admitted: false, address, reason: 'refused', detail };
    }
    const key = limitKey(address);
    const fromKey = this.#perKey.get(key) ?? 0;
    if (this.#total >= this.#limits.maxConnections) return this.#refuse(address, 'total', 'connection limit reached');
    if (fromKey >= this.#limits.maxConnectionsPerIp) return this.#refuse(address, 'per-ip', 'per-address connection limit reached');
    this.#perKey.set(key, fromKey + 1);
    this.#total++;
    return { admitted: true, address, key };
  }

  #refuse(address: string, reason: 'total' | 'per-ip', detail: string): Admission {
    for (const listener of this.#refusals) listener(address, reason);
    return { admitted: false, address, reason, detail };
  }

  release(key: string): void {
    const count = this.#perKey.get(key);
    if (count === undefined) return;
    this.#total--;
    if (count > 1) this.#perKey.set(key, count - 1);
    else this.#perKey.delete(key);
  }
}

/**
 * Log a refused connection and turn it away. A policy's refusal (a ban)
 * was logged by the policy, once, when it began: its connections are not
 * logged one by one (at debug only), and the client reads the policy's text.
 */
export function refuse(socket: net.Socket, implicitTls: boolean, refusal: Extract<Admission, { admitted: false }>, logger: Logger): void {
  if (refusal.reason === 'refused') logger.debug({ remoteAddress: refusal.address }, `connection refused: ${refusal.detail}`);
  else logger.warn({ remoteAddress: refusal.address, reason: refusal.reason }, refusal.detail);
  turnAway(socket, implicitTls, refusal.reason === 'refused' ? refusal.detail : undefined);
}

/**
 * Turn a refused connection away: 421 on a plain one (a TLS client would
 * read it as a protocol error, so an implicit-FTPS one is just closed), and
 * destroyed after 2 s if the client does not close (it may never read).
 */
export function turnAway(socket: net.Socket, implicitTls: boolean, text = 'Too many connections; try again later.'): void {
  socket.on('error', () => {});
  if (implicitTls) socket.destroy();
  else socket.end(formatReply(421, text));
  setTimeout(() => socket.destroy(), 2000).unref();
}
