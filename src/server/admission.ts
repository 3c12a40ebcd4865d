/**
 * The admission gate: whether a new control connection may be served at
 * all, decided before the greeting. One gate for both ways Ferry runs: the
 * single-process server's listener and the cluster primary, which accepts
 * for all its workers (workers then skip it). It counts connections in
 * total and per address (IPv6 by /64, see limitKey) and asks the policies
 * plugged into it (the defender's deny list and bans) about the address.
 */
import net from 'node:net';
import { normalizeAddress } from '../protocol/address.js';
import { formatReply } from '../protocol/reply.js';

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/** A policy consulted for every new connection: a reason to refuse the address, or null. */
export type AddressCheck = (address: string) => string | null;

export type Admission =
  | { admitted: true; address: string; key: string }
  | { admitted: false; address: string; reason: 'total' | 'per-ip' | 'refused'; detail: string };

export class AdmissionGate {
  #limits: AdmissionLimits;
  readonly #checks: AddressCheck[] = [];
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
    if (this.#total >= this.#limits.maxConnections) return { admitted: false, address, reason: 'total', detail: 'connection limit reached' };
    if (fromKey >= this.#limits.maxConnectionsPerIp) return { admitted: false, address, reason: 'per-ip', detail: 'per-address connection limit reached' };
    this.#perKey.set(key, fromKey + 1);
    this.#total++;
    return { admitted: true, address, key };
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

/**
 * The per-IP limit counts IPv6 clients by their /64: one host usually owns a
 * whole /64, so counting single addresses would be no limit at all.
 */
export function limitKey(address: string): string {
  if (!address.includes(':')) return address;
  const groups = address.split('::');
  const head = groups[0] ? groups[0].split(':') : [];
  const tail = groups.length > 1 && groups[1] ? groups[1].split(':') : [];
  const full = [...head, ...Array(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  return `${full.slice(0, 4).join(':')}::/64`;
}
