/**
 * The defender: remembers what each client address did wrong, across its
 * connections, and bans it for a while once that adds up.
 *
 * Every offence has a score (`scores`): a failed login (an unknown user
 * scores exactly as a wrong password, so a ban never tells which names
 * exist), a connection over the per-address limit, and protocol abuse a
 * real client never commits (a command line over the length limit, a
 * command queue overflow, a login timeout, replies never read). When an
 * address's score within the last `windowMs` reaches `threshold`, it is
 * banned for `banMs`;
 * each later ban of the same address lasts `banGrowth` times longer, up to
 * `maxBanMs`. An address that stays clean for `maxBanMs` after a ban is
 * forgotten (its next ban starts at `banMs` again).
 *
 * Addresses are counted as the connection limits count them (`limitKey`:
 * IPv6 by /64, since one host usually owns a whole /64). `allowList`
 * addresses are never scored nor banned; `denyList` addresses are always
 * refused, even when also allowed. `enabled: false` stops scoring and
 * automatic bans; the deny list and bans added by hand still apply.
 *
 * Pure bookkeeping with no I/O but its timer (for 'unban' at expiry) and
 * its log lines: the AdmissionGate asks `verdict` for each new connection,
 * sessions `report` offences, and in cluster mode this object lives in the
 * primary and workers reach it through `shared.defender`. Every method
 * takes and returns JSON values for that reason.
 */
import net from 'node:net';
import { addressList, inList } from '../protocol/address.js';
import { DEFENDER, DEFENDER_OTHER, DEFENDER_SCORES, resolveNumbers } from '../defaults.js';
import { ErrorCodes, FerryError, replyForError } from '../errors.js';
import type { BanInfo, UnbanInfo } from '../observability/events.js';
import type { Logger } from '../observability/logger.js';
import { silentLogger } from '../observability/logger.js';
import { limitKey, normalizeAddress } from '../protocol/address.js';

export type Offence = 'login-failed' | 'limit-exceeded' | 'protocol-abuse';

export interface DefenderScores {
  /** A failed login: wrong password, unknown user, disabled account, address not allowed. */
  loginFailed: number;
  /** A connection refused by maxConnectionsPerIp (not by maxConnections: a full server is not the client's doing). */
  limitExceeded: number;
  /** A command line over maxCommandBytes, too many commands queued, replies never read, a login timeout. */
  protocolAbuse: number;
}

export interface DefenderSettings {
  enabled: boolean;
  /** Score at which an address is banned. */
  threshold: number;
  /** Offences older than this no longer count. */
  windowMs: number;
  /** Length of an address's first ban. */
  banMs: number;
  /** Each further ban of the same address lasts this many times the previous one. */
  banGrowth: number;
  /** Longest automatic ban; also how long an address must stay clean to be forgotten. */
  maxBanMs: number;
  scores: DefenderScores;
  /** Addresses or CIDR ranges never scored nor banned. */
  allowList: readonly string[];
  /** Addresses or CIDR ranges always refused (even when also in allowList). */
  denyList: readonly string[];
}

/** Library option: any subset of the settings; `false` is `{ enabled: false }`. */
export type DefenderOptions = false | (Partial<Omit<DefenderSettings, 'scores'>> & { scores?: Partial<DefenderScores> });

/** What `guard` needs of the admission gate (server/admission.ts), which sits above this module. */
export interface Gate {
  addCheck(check: (address: string) => string | null): void;
  onRefused(listener: (address: string, reason: 'total' | 'per-ip') => void): void;
}

export type Verdict = 'allowed' | 'denied' | 'banned';

/** The 421 text a banned or denied client reads (before the greeting, or at PASS): errors.ts has them. */
export function refusalText(verdict: Exclude<Verdict, 'allowed'>): string {
  return replyForError(new FerryError(verdict === 'banned' ? ErrorCodes.ADDRESS_BANNED : ErrorCodes.ADDRESS_DENIED)).text;
}

export interface DefenderHooks {
  logger?: Logger;
  onBan?: (info: BanInfo) => void;
  onUnban?: (info: UnbanInfo) => void;
  /** The clock (tests). */
  now?: () => number;
}

/** Addresses tracked at most; beyond, the least recently seen one is forgotten (a flood of addresses must not grow memory without bound). */
const MAX_TRACKED = 100_000;
/** The longest a timer can wait (setTimeout's limit); later expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Offences {
  at: number;
  points: number;
  kind: Offence;
}

interface Tracked {
  offences: Offences[];
  /** 0 when not banned; Infinity for a ban until removed. */
  bannedUntil: number;
  ban: BanInfo | null;
  /** Automatic bans so far (each makes the next one longer). */
  strikes: number;
  /** When the last automatic ban ended (or will). */
  lastBanEnd: number;
}

const KIND_NAMES: Record<Offence, [string, string]> = {
  'login-failed': ['failed login', 'failed logins'],
  'limit-exceeded': ['connection over a limit', 'connections over a limit'],
  'protocol-abuse': ['protocol abuse', 'protocol abuses'],
};

/** The options over the defaults, checked; throws TypeError naming the bad setting. */
export function resolveDefenderSettings(options: DefenderOptions | DefenderSettings | undefined): DefenderSettings {
  const given = options === false ? { enabled: false } : (options ?? {});
  const settings: DefenderSettings = {
    enabled: given.enabled ?? DEFENDER_OTHER.enabled,
    ...resolveNumbers(DEFENDER, given as Partial<Record<keyof typeof DEFENDER, number>>, 'defender.'),
    banGrowth: given.banGrowth ?? DEFENDER_OTHER.banGrowth,
    scores: Object.freeze(resolveNumbers(DEFENDER_SCORES, given.scores, 'defender.scores.')),
    allowList: Object.freeze([...(given.allowList ?? [])]),
    denyList: Object.freeze([...(given.denyList ?? [])]),
  };
  if (settings.maxBanMs < settings.banMs) throw new TypeError(`defender.maxBanMs: ${settings.maxBanMs} is shorter than banMs (${settings.banMs}); make it at least that`);
  if (typeof settings.banGrowth !== 'number' || !(settings.banGrowth >= 1) || !Number.isFinite(settings.banGrowth)) {
    throw new TypeError(`defender.banGrowth: ${String(settings.banGrowth)} is not a number of at least 1`);
  }
  for (const name of ['allowList', 'denyList'] as const) {
    try {
      addressList(settings[name]);
    } catch (err) {
      throw new TypeError(`defender.${name}: ${(err as Error).message}`);
    }
  }
  return Object.freeze(settings);
}

export class Defender {
  #settings!: DefenderSettings;
  #allow!: net.BlockList;
  #deny!: net.BlockList;
  readonly #tracked = new Map<string, Tracked>();
  readonly #log: Logger;
  readonly #onBan: (info: BanInfo) => void;
  readonly #onUnban: (info: UnbanInfo) => void;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;

  constructor(options: DefenderOptions | DefenderSettings | undefined, hooks: DefenderHooks = {}) {
    this.#log = hooks.logger ?? silentLogger;
    this.#onBan = hooks.onBan ?? (() => {});
    this.#onUnban = hooks.onUnban ?? (() => {});
    this.#now = hooks.now ?? Date.now;
    this.configure(options);
  }

  get settings(): DefenderSettings {
    return this.#settings;
  }

  /** New settings (reload). Bans in force keep their end; scores so far stay. */
  configure(options: DefenderOptions | DefenderSettings | undefined): void {
    this.#settings = resolveDefenderSettings(options);
    this.#allow = addressList(this.#settings.allowList);
    this.#deny = addressList(this.#settings.denyList);
  }

  /** What to do with a new connection from `address`. */
  verdict(address: string): Verdict {
    const ip = normalizeAddress(address);
    if (inList(this.#deny, ip)) return 'denied';
    if (inList(this.#allow, ip)) return 'allowed';
    const tracked = this.#tracked.get(limitKey(ip));
    if (!tracked || tracked.bannedUntil === 0) return 'allowed';
    if (tracked.bannedUntil > this.#now()) return 'banned';
    this.#expire();
    return 'allowed';
  }

  /**
   * Count an offence of `address`; returns the verdict after it, so a
   * session can close at once when this offence got its address banned.
   */
  report(address: string, kind: Offence): Verdict {
    const ip = normalizeAddress(address);
    const verdict = this.verdict(ip);
    const points = this.#settings.scores[scoreKey(kind)];
    if (verdict !== 'allowed' || !this.#settings.enabled || points === 0 || inList(this.#allow, ip)) return verdict;
    const key = limitKey(ip);
    const now = this.#now();
    const tracked = this.#touch(key);
    const since = now - this.#settings.windowMs;
    while (tracked.offences.length > 0 && tracked.offences[0]!.at <= since) tracked.offences.shift();
    tracked.offences.push({ at: now, points, kind });
    let score = 0;
    for (const offence of tracked.offences) score += offence.points;
    if (score < this.#settings.threshold) return 'allowed';
    // Clean long enough since the last ban: a first offender again.
    if (now - tracked.lastBanEnd > this.#settings.maxBanMs) tracked.strikes = 0;
    const { banMs, banGrowth, maxBanMs } = this.#settings;
    const durationMs = Math.min(maxBanMs, Math.round(banMs * banGrowth ** tracked.strikes));
    tracked.strikes++;
    tracked.lastBanEnd = now + durationMs;
    this.#impose(key, tracked, { reason: describe(tracked.offences, this.#settings.windowMs), manual: false, durationMs }, now);
    tracked.offences = [];
    return 'banned';
  }

  /**
   * Ban an address by hand: for `durationMs`, or until removed (or the
   * server restarts) when it is null. Replaces a ban in force. Throws
   * TypeError for something that is not an address, or one on the allow list.
   */
  ban(address: string, options: { durationMs?: number | null; reason?: string } = {}): BanInfo {
    const ip = parseAddress(address);
    const durationMs = options.durationMs ?? null;
    if (durationMs !== null && (!Number.isInteger(durationMs) || durationMs < 1)) throw new TypeError(`ban duration: ${String(durationMs)} is not a whole number of milliseconds of at least 1`);
    if (inList(this.#allow, ip) && !inList(this.#deny, ip)) throw new TypeError(`${address} is on defender.allowList, which is never banned; take it off that list first`);
    const key = limitKey(ip);
    const tracked = this.#touch(key);
    const now = this.#now();
    return this.#impose(key, tracked, { reason: options.reason || 'no reason given', manual: true, durationMs }, now);
  }

  /**
   * Lift the ban on `address` (its /64 for IPv6) and forget its score and
   * past bans. Returns the ban lifted, or null when there was none.
   */
  unban(address: string): BanInfo | null {
    const key = limitKey(parseAddress(address));
    const tracked = this.#tracked.get(key);
    this.#tracked.delete(key);
    if (!tracked?.ban || tracked.bannedUntil <= this.#now()) return null;
    this.#lifted(tracked.ban, 'removed');
    return tracked.ban;
  }

  /** The bans in force, soonest to end first (bans until removed last). */
  list(): BanInfo[] {
    this.#expire();
    const bans: Array<[number, BanInfo]> = [];
    for (const tracked of this.#tracked.values()) if (tracked.ban) bans.push([tracked.bannedUntil, tracked.ban]);
    return bans.sort((a, b) => a[0] - b[0]).map(([, ban]) => ban);
  }

  /** Addresses remembered now (scored, banned, or with past bans). */
  get trackedCount(): number {
    return this.#tracked.size;
  }

  /** Stop the expiry timer (the server closes). Bans are kept in memory only. */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  #touch(key: string): Tracked {
    let tracked = this.#tracked.get(key);
    if (tracked) {
      // Map order is the order last seen: the first entries are the ones to forget.
      this.#tracked.delete(key);
    } else {
      tracked = { offences: [], bannedUntil: 0, ban: null, strikes: 0, lastBanEnd: -Infinity };
      if (this.#tracked.size >= MAX_TRACKED) this.#forgetOldest();
    }
    this.#tracked.set(key, tracked);
    return tracked;
  }

  /** Forget the least recently seen address that is not banned by hand (an operator's ban must not fall out). */
  #forgetOldest(): void {
    for (const [key, tracked] of this.#tracked) {
      if (tracked.ban?.manual && tracked.bannedUntil > this.#now()) continue;
      this.#tracked.delete(key);
      return;
    }
  }

  #impose(key: string, tracked: Tracked, ban: { reason: string; manual: boolean; durationMs: number | null }, now: number): BanInfo {
    const until = ban.durationMs === null ? Infinity : now + ban.durationMs;
    const info: BanInfo = {
      address: key,
      reason: ban.reason,
      manual: ban.manual,
      since: new Date(now).toISOString(),
      durationMs: ban.durationMs,
      expiresAt: until === Infinity ? null : new Date(until).toISOString(),
    };
    tracked.bannedUntil = until;
    tracked.ban = info;
    // Once per ban, never per refused connection: the gate refuses silently.
    this.#log.warn(info, 'address banned');
    this.#onBan(info);
    this.#arm(until);
    return info;
  }

  #lifted(ban: BanInfo, cause: UnbanInfo['cause']): void {
    const info: UnbanInfo = { ...ban, cause };
    this.#log.info(info, 'ban lifted');
    this.#onUnban(info);
  }

  /** One timer, for the earliest ban end: 'unban' is emitted when a ban ends, not when the address next knocks. */
  #arm(until: number): void {
    if (until === Infinity || until >= this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = until;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#expire();
    }, Math.min(MAX_TIMER_MS, Math.max(0, until - this.#now()))).unref();
  }

  /** End the bans that are over and forget addresses with nothing left to remember; re-arm for the next end. */
  #expire(): void {
    const now = this.#now();
    let next = Infinity;
    for (const [key, tracked] of this.#tracked) {
      if (tracked.ban && tracked.bannedUntil <= now) {
        const ban = tracked.ban;
        tracked.ban = null;
        tracked.bannedUntil = 0;
        this.#lifted(ban, 'expired');
      }
      if (tracked.ban) next = Math.min(next, tracked.bannedUntil);
      else if (now - tracked.lastBanEnd > this.#settings.maxBanMs && !tracked.offences.some((o) => o.at > now - this.#settings.windowMs)) this.#tracked.delete(key);
    }
    if (next < this.#timerAt) this.#arm(next);
  }
}

/**
 * Plug `defender` into an admission gate: its deny list and bans refused
 * before the greeting (421 with the reason), connections the per-address
 * limit refuses scored.
 */
export function guard(gate: Gate, defender: Defender): void {
  gate.addCheck((address) => {
    const verdict = defender.verdict(address);
    return verdict === 'allowed' ? null : refusalText(verdict);
  });
  gate.onRefused((address, reason) => {
    // A full server is not the client's doing; its own address's limit is.
    if (reason === 'per-ip') defender.report(address, 'limit-exceeded');
  });
}

function scoreKey(kind: Offence): keyof DefenderScores {
  return kind === 'login-failed' ? 'loginFailed' : kind === 'limit-exceeded' ? 'limitExceeded' : 'protocolAbuse';
}

/** An address (IPv4, IPv6, or an IPv6 /64 as `ferry ban list` shows it), normalised; TypeError otherwise. */
function parseAddress(address: string): string {
  const text = String(address).trim().replace(/\/64$/, '');
  const ip = normalizeAddress(text);
  if (net.isIP(ip) === 0 || (String(address).trim().endsWith('/64') && !net.isIPv6(ip))) {
    throw new TypeError(`"${address}" is not an IP address (like 203.0.113.7 or 2001:db8::1; an IPv6 address bans its /64)`);
  }
  return ip;
}

/** "7 failed logins and 1 protocol abuse within 10 min". */
function describe(offences: readonly Offences[], windowMs: number): string {
  const counts = new Map<Offence, number>();
  for (const { kind } of offences) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  const parts = [...counts].map(([kind, n]) => `${n} ${KIND_NAMES[kind][n === 1 ? 0 : 1]}`);
  const minutes = windowMs / 60_000;
  const within = Number.isInteger(minutes) ? `${minutes} min` : `${windowMs / 1000} s`;
  return `${parts.join(' and ')} within ${within}`;
}
