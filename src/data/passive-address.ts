/**
 * The address PASV announces (RFC 959 §4.1.2: the 227 reply carries an IPv4
 * address), chosen per client network. Behind NAT the server's own address
 * is useless to clients outside, and the public one may be useless (or
 * hairpinned) to clients inside, so an operator lists rules:
 *
 *   - from: 10.0.0.0/8        # clients in the LAN
 *     announce: connected     # the address they connected to
 *   - announce: ftp.example.com   # everyone else: the public name, resolved at PASV time
 *
 * The first rule whose `from` contains the client's address decides; a rule
 * without `from` matches every client; no match means `connected`. A plain
 * string is the one-rule form (`masqueradeAddress: 203.0.113.7`).
 *
 * Two halves: `compilePassiveAddress`/`chooseTarget` are pure (validation
 * and matching); `PassiveAddress.announce` does the one piece of I/O, the
 * host name lookup, bounded by a timeout and cached briefly, so dynamic DNS
 * is followed within `ttlMs` and a dead resolver never holds a session.
 * EPSV (RFC 2428) announces only a port and never consults any of this.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import net from 'node:net';
import { addressList, inList } from '../protocol/address.js';
import type { Logger } from '../observability/logger.js';
import { isHostName } from '../protocol/address.js';

/** One rule: clients whose address is in `from` get `announce` in PASV replies. */
export interface PassiveAddressRule {
  /** Addresses or CIDR ranges (IPv4 or IPv6) of the clients this rule is for. Absent: every client. */
  from?: string | readonly string[];
  /** An IPv4 address, a host name (looked up, IPv4, when a client sends PASV), or 'connected' (the address the client connected to). */
  announce: string;
}

/** `masqueradeAddress`: one announce value for everyone, or rules by client network. */
export type PassiveAddressSetting = string | readonly PassiveAddressRule[];

/** The keyword for "the control connection's local address" (what PASV announces without a setting). */
export const CONNECTED = 'connected';

export type PassiveTarget = { kind: 'connected' } | { kind: 'address'; address: string } | { kind: 'host'; name: string };

interface CompiledRule {
  readonly from: net.BlockList | null;
  readonly target: PassiveTarget;
}

export const ANNOUNCE_HELP = `an IPv4 address, a host name, or ${CONNECTED} (PASV can only announce IPv4)`;

/** What an `announce` value means, or null when it is none of the accepted forms. */
export function parseAnnounce(value: string): PassiveTarget | null {
  if (value === CONNECTED) return { kind: 'connected' };
  // 0.0.0.0 names no host: a client told to connect there never reaches the server.
  if (net.isIPv4(value)) return value === '0.0.0.0' ? null : { kind: 'address', address: value };
  // A dotted quad that is not an address (300.1.1.1) is a typo, not a host name.
  if (isHostName(value) && !/^[\d.]+$/.test(value)) return { kind: 'host', name: value.toLowerCase() };
  return null;
}

/**
 * The rules of a setting, checked. Throws a TypeError naming the rule and
 * the field (`masqueradeAddress[1].from: "10.0.0.0/33" is not ...`).
 */
export function compilePassiveAddress(setting: PassiveAddressSetting): readonly CompiledRule[] {
  if (typeof setting === 'string') return Object.freeze([compileRule({ announce: setting }, 'masqueradeAddress', 'masqueradeAddress')]);
  if (!Array.isArray(setting)) throw new TypeError(`masqueradeAddress: expected ${ANNOUNCE_HELP}, or a list of rules { from, announce }`);
  return Object.freeze(setting.map((rule, i) => compileRule(rule, `masqueradeAddress[${i}]`, `masqueradeAddress[${i}].announce`)));
}

function compileRule(rule: PassiveAddressRule, where: string, announceWhere: string): CompiledRule {
  if (typeof rule !== 'object' || rule === null) throw new TypeError(`${where}: expected a rule { from, announce }`);
  const target = typeof rule.announce === 'string' ? parseAnnounce(rule.announce) : null;
  if (!target) throw new TypeError(`${announceWhere}: ${JSON.stringify(rule.announce)} is not ${ANNOUNCE_HELP}`);
  if (rule.from === undefined) return { from: null, target };
  const single = typeof rule.from === 'string';
  const items = single ? [rule.from as string] : rule.from;
  if (!Array.isArray(items) || items.length === 0) throw new TypeError(`${where}.from: expected an address or CIDR range, or a non-empty list of them (leave it out to match every client)`);
  items.forEach((item, i) => {
    try {
      addressList([item]);
    } catch {
      throw new TypeError(`${where}.from${single ? '' : `[${i}]`}: ${JSON.stringify(item)} is not an IP address or CIDR range like 10.0.0.0/8 or 2001:db8::/32`);
    }
  });
  return { from: addressList(items), target };
}

/** The first rule matching `client` decides; none: the connected address. */
export function chooseTarget(rules: readonly CompiledRule[], client: string): PassiveTarget {
  for (const rule of rules) {
    if (rule.from === null || inList(rule.from, client)) return rule.target;
  }
  return { kind: 'connected' };
}

export type Lookup = (name: string) => Promise<string>;

const lookupIPv4: Lookup = async (name) => (await dnsLookup(name, { family: 4 })).address;

export interface PassiveAddressTiming {
  /** Give up on a lookup after this long (the PASV reply waits at most this). Default 2000. */
  timeoutMs?: number;
  /** Reuse a looked-up address this long before asking again. Default 10000. */
  ttlMs?: number;
  /** After a failed lookup, wait this long before the next try (PASV uses the fallback meanwhile). Default 5000. */
  retryMs?: number;
}

interface CacheEntry {
  /** The last address this name resolved to, kept through failures (a resolver outage rarely means the address moved). */
  address: string | null;
  /** When to ask again. */
  freshUntil: number;
  /** The lookup under way; one per name at a time, however many sessions wait for it. */
  pending: Promise<string> | null;
}

/** The rules of `masqueradeAddress` and the host name cache they share; one per resolved set of options. */
export class PassiveAddress {
  readonly #rules: readonly CompiledRule[];
  readonly #lookup: Lookup;
  readonly #timeoutMs: number;
  readonly #ttlMs: number;
  readonly #retryMs: number;
  readonly #cache = new Map<string, CacheEntry>();

  constructor(setting: PassiveAddressSetting | null, timing: PassiveAddressTiming = {}, lookup: Lookup = lookupIPv4) {
    this.#rules = setting === null ? [] : compilePassiveAddress(setting);
    this.#lookup = lookup;
    this.#timeoutMs = timing.timeoutMs ?? 2000;
    this.#ttlMs = timing.ttlMs ?? 10_000;
    this.#retryMs = timing.retryMs ?? 5000;
  }

  /**
   * The IPv4 address to announce to `client`, who connected to `connected`
   * (returned as is when that is what the rules say; the caller checks its
   * family). Never rejects: a failed or slow lookup falls back to the last
   * address the name had, else to `connected`, and is logged.
   */
  async announce(client: string, connected: string, log: Logger): Promise<string> {
    const target = chooseTarget(this.#rules, client);
    if (target.kind === 'connected') return connected;
    if (target.kind === 'address') return target.address;
    return this.#resolve(target.name, connected, log);
  }

  async #resolve(name: string, connected: string, log: Logger): Promise<string> {
    let entry = this.#cache.get(name);
    if (!entry) {
      entry = { address: null, freshUntil: 0, pending: null };
      this.#cache.set(name, entry);
    }
    if (entry.address !== null && Date.now() < entry.freshUntil) return entry.address;
    if (entry.address === null && Date.now() < entry.freshUntil) return connected; // failed recently: no new wait
    const cached = entry;
    // A lookup stuck in the resolver stays the one pending lookup: timeouts
    // below only stop waiting for it, so a dead resolver costs one thread of
    // libuv's pool per name, not one per PASV.
    cached.pending ??= this.#lookup(name)
      .then((address) => {
        if (!net.isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
        cached.address = address;
        cached.freshUntil = Date.now() + this.#ttlMs;
        return address;
      })
      .finally(() => {
        cached.pending = null;
      });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    try {
      return await Promise.race([cached.pending, timeout]);
    } catch (err) {
      cached.freshUntil = Date.now() + this.#retryMs;
      const fallback = cached.address ?? connected;
      log.warn(
        { err, host: name, announced: fallback },
        `masqueradeAddress: looking up ${name} failed; PASV announces ${cached.address ? 'its last known address' : 'the address the client connected to'} until it works (retried in ${this.#retryMs} ms)`,
      );
      return fallback;
    } finally {
      clearTimeout(timer);
    }
  }
}
