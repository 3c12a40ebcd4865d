/**
 * Server options: defaults, validation, freezing. Validated once at
 * construction; a bad value throws a TypeError that names the option and
 * what it expects. Units are in the names (…Ms, …Bytes).
 */
import type { AccountLimits, Authenticator } from '../auth/types.js';
import { addressList } from '../protocol/address.js';
import { DEFAULTS, LIMITS, type LimitName, PER_USER_LIMITS, PROXY_PROTOCOL, type PerUserLimitName, resolveNumbers, wholeNumberOption } from '../defaults.js';
import type { Logger } from '../observability/logger.js';
import { silentLogger } from '../observability/logger.js';
import type { PortRange } from '../data/passive.js';
import { PassiveAddress, type PassiveAddressSetting } from '../data/passive-address.js';
import { resolveTlsOptions, type ResolvedTlsOptions, type TlsOptions } from '../tls/options.js';
import type { ProxyProtocolOptions } from './proxy-protocol.js';
import type { SharedState } from './shared-state.js';
import type { CommandSpec } from '../session/command.js';
import { resolveDefenderSettings, type DefenderOptions, type DefenderSettings } from '../limits/defender.js';

export interface FtpServerOptions {
  /** Decides who may log in and what storage and permissions they get. Required. */
  authenticator: Authenticator;
  /** Address to listen on. Default '0.0.0.0'; use '::' for IPv6 (and IPv4 where the OS maps it). */
  host?: string;
  /** Control port. Default 2121; 0 picks a free port (see `server.address()`). */
  port?: number;
  /** Passive data ports, `{ min, max }` or "50000-50100". Default: any free port. */
  passivePorts?: PortRange | string;
  /**
   * What PASV replies announce, for servers behind NAT: an IPv4 address, a
   * host name (looked up when a client sends PASV, for dynamic DNS), or
   * rules by client network, `[{ from: '10.0.0.0/8', announce: 'connected' },
   * { announce: '203.0.113.7' }]`: the first rule whose `from` holds the
   * client's address decides, one without `from` matches everyone.
   * `connected` (and no matching rule) is the address the client connected
   * to. Default: that address for everyone. EPSV announces no address.
   */
  masqueradeAddress?: PassiveAddressSetting;
  /** Text of the 220 greeting (one string, or lines). */
  greeting?: string | string[];
  /** Concurrent control connections in total (421 beyond). Default 512. */
  maxConnections?: number;
  /** Concurrent control connections from one IP address (421 beyond). Default 32. */
  maxConnectionsPerIp?: number;
  /** Longest command line accepted, in bytes (500 beyond). Default 8192. */
  maxCommandBytes?: number;
  /** Close a control connection silent this long (not counting transfers). Default 300000. */
  idleTimeoutMs?: number;
  /** Close a connection that has not logged in this long after connecting, active or not. Default 60000. */
  loginTimeoutMs?: number;
  /** How long to wait for a data connection to arrive or connect. Default 30000. */
  dataConnectTimeoutMs?: number;
  /** Abort a transfer whose data connection moves no byte for this long. Default 300000. */
  dataIdleTimeoutMs?: number;
  /**
   * After an upload's data connection ends, how long to wait for the control
   * connection to close too (a killed client) before committing. 0 commits
   * at once, as vsftpd does, and a client killed mid-upload then replaces
   * the old file with its partial data. Default 20. See docs/architecture.md.
   */
  uploadSettleMs?: number;
  /** Failed logins allowed per connection before 421 and close. Default 3. */
  maxLoginAttempts?: number;
  /** Delay before answering a failed login, against guessing. Default 1000. */
  loginFailureDelayMs?: number;
  /** Allow PORT/EPRT (to the client's own address only). Default true. */
  allowActiveMode?: boolean;
  /**
   * Hash every upload as it streams in (SHA-256 of the bytes stored): the
   * `sha256` of file-received, and on S3 the object's `ferry-sha256`.
   * Default true; false saves that CPU (about 0.6 s of one core per GB).
   */
  uploadSha256?: boolean;
  /** How long close() lets running transfers finish. Default 10000. */
  shutdownGraceMs?: number;
  /**
   * The largest file any user may store, in bytes, whatever the backend
   * (`perUserLimits.maxFileSizeBytes` or an account's own may be smaller:
   * the stricter applies). The upload that crosses it gets 552 at once and
   * is discarded. Default 0: no limit.
   */
  maxFileSizeBytes?: number;
  /**
   * Bandwidth of every download together (RETR and listings), in bytes per
   * second, across every worker; a transfer also obeys its user's rate
   * (`perUserLimits`, Account `limits`), the tighter at each moment. 0: no
   * limit (the default).
   */
  downloadBytesPerSecond?: number;
  /** The same for every upload together (STOR, APPE, STOU). 0: no limit (the default). */
  uploadBytesPerSecond?: number;
  /**
   * HASH and XCRC/XMD5/XSHA1/XSHA256/XSHA512 commands running at once in
   * this process; one more is refused with 450 (try again later). Default 4.
   */
  maxConcurrentHashes?: number;
  /**
   * Commands added to the built-in table: new verbs, or new rows under SITE
   * and OPTS (`verb: 'SITE REINDEX'`). See docs/events.md, "Commands of
   * your own". A verb the server already has is a TypeError. Read once, at
   * construction.
   */
  commands?: readonly CommandSpec[];
  /**
   * How long an awaited hook (`server.hook('beforeUpload', ...)`) may take;
   * beyond it the action is refused with 451 and a warn line. Default 5000.
   */
  hookTimeoutMs?: number;
  /**
   * Put before each session id ("1", "2", ...): several servers whose logs
   * or events meet (cluster workers: "0-1", "1-1") keep them apart.
   * Default ''.
   */
  sessionIdPrefix?: string;
  /** A pino-compatible logger. Default: silent. */
  logger?: Logger;
  /**
   * Limits of every user unless its Account's `limits` say otherwise, key by
   * key. Default: none (0 everywhere).
   */
  perUserLimits?: AccountLimits;
  /**
   * The defender: bans for addresses that keep failing logins or abusing
   * the protocol, and allow/deny lists (CIDR). On by default; `false` turns
   * scoring off (denyList and bans by hand still apply). See
   * docs/configuration.md, "The defender". Manage bans with
   * `server.shared.defender` (`list()`, `ban(address, {durationMs, reason})`,
   * `unban(address)`); the server emits 'ban' and 'unban'.
   */
  defender?: DefenderOptions;
  /**
   * State every process of one server must agree on (sessions per user,
   * ...). Absent parts are made by the server, for one process; the CLI's
   * cluster mode passes proxies to the primary's (see server/shared.ts).
   * Read once, at construction: a reconfigure keeps the state.
   */
  shared?: Partial<SharedState>;
  /**
   * PROXY protocol (v1 and v2) on the control listeners, for a server behind
   * HAProxy or an AWS NLB: `trustedSources` are the balancers' addresses or
   * CIDR ranges (empty, the default: off). When set, every connection must
   * come from one of them and start with a header (within `headerTimeoutMs`,
   * default 5000), and the client address it names is the one limits, bans,
   * logs, events and data-connection checks use; other addresses get 421.
   * See docs/load-balancers.md.
   */
  proxyProtocol?: { trustedSources?: readonly string[]; headerTimeoutMs?: number };
  /**
   * FTPS (explicit AUTH TLS, and implicit TLS with `implicitPort`): PEM
   * certificate and key, policy, session reuse. See docs/tls.md. Default:
   * no TLS (AUTH answers 502).
   */
  tls?: TlsOptions;
}

export interface ResolvedOptions extends Readonly<Record<LimitName, number>> {
  readonly authenticator: Authenticator;
  readonly host: string;
  readonly port: number;
  readonly passivePorts: PortRange | null;
  /** masqueradeAddress, compiled, with its host name cache. */
  readonly passiveAddress: PassiveAddress;
  readonly greeting: readonly string[];
  readonly allowActiveMode: boolean;
  readonly hookTimeoutMs: number;
  readonly sessionIdPrefix: string;
  readonly uploadSha256: boolean;
  readonly perUserLimits: Readonly<Required<AccountLimits>>;
  readonly defender: DefenderSettings;
  readonly proxyProtocol: Readonly<ProxyProtocolOptions>;
  readonly logger: Logger;
  readonly tls: ResolvedTlsOptions | null;
}

export function parsePortRange(value: string): PortRange | null {
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(value);
  if (!match) return null;
  const min = Number(match[1]);
  const max = Number(match[2]);
  return min >= 1 && max <= 65535 && min <= max ? { min, max } : null;
}

export function resolveOptions(options: FtpServerOptions): ResolvedOptions {
  if (!options || typeof options.authenticator?.authenticate !== 'function') {
    throw new TypeError('authenticator: required, an object with an authenticate(request) method');
  }
  let passivePorts: PortRange | null = null;
  if (typeof options.passivePorts === 'string') {
    passivePorts = parsePortRange(options.passivePorts);
    if (!passivePorts) throw new TypeError(`passivePorts: "${options.passivePorts}" is not a port range like 50000-50100 (1-65535)`);
  } else if (options.passivePorts) {
    const { min, max } = options.passivePorts;
    if (min === undefined || max === undefined) throw new TypeError('passivePorts: give both min and max, e.g. { min: 50000, max: 50100 }');
    wholeNumberOption('passivePorts.min', min, 0, 1, 65535);
    wholeNumberOption('passivePorts.max', max, 0, min, 65535);
    passivePorts = { min, max };
  }
  const port = wholeNumberOption('port', options.port, DEFAULTS.port, 0, 65535);
  if (passivePorts && port >= passivePorts.min && port <= passivePorts.max) {
    throw new TypeError(`passivePorts: ${passivePorts.min}-${passivePorts.max} includes the control port ${port}; choose a range without it`);
  }
  const passiveAddress = new PassiveAddress(options.masqueradeAddress ?? null);
  const greeting = options.greeting ?? DEFAULTS.greeting;
  const tls = options.tls === undefined ? null : resolveTlsOptions(options.tls);
  if (tls?.implicitPort && (tls.implicitPort === port || (passivePorts && tls.implicitPort >= passivePorts.min && tls.implicitPort <= passivePorts.max))) {
    throw new TypeError(`tls.implicitPort: ${tls.implicitPort} is already the control port or in the passive range; choose another (usually 990)`);
  }
  return Object.freeze({
    authenticator: options.authenticator,
    host: options.host ?? DEFAULTS.host,
    port,
    passivePorts,
    passiveAddress,
    greeting: Object.freeze(typeof greeting === 'string' ? greeting.split(/\r?\n/) : [...greeting]),
    ...resolveNumbers<LimitName>(LIMITS, options),
    allowActiveMode: options.allowActiveMode ?? DEFAULTS.allowActiveMode,
    hookTimeoutMs: wholeNumberOption('hookTimeoutMs', options.hookTimeoutMs, DEFAULTS.hookTimeoutMs, 1),
    sessionIdPrefix: options.sessionIdPrefix ?? '',
    uploadSha256: options.uploadSha256 ?? DEFAULTS.uploadSha256,
    perUserLimits: Object.freeze(resolveNumbers<PerUserLimitName>(PER_USER_LIMITS, options.perUserLimits, 'perUserLimits.')),
    defender: resolveDefenderSettings(options.defender),
    proxyProtocol: resolveProxyProtocol(options.proxyProtocol),
    logger: options.logger ?? silentLogger,
    tls,
  });
}

function resolveProxyProtocol(given: FtpServerOptions['proxyProtocol']): Readonly<ProxyProtocolOptions> {
  const trustedSources = Object.freeze([...(given?.trustedSources ?? [])]);
  try {
    addressList(trustedSources);
  } catch (err) {
    throw new TypeError(`proxyProtocol.trustedSources: ${(err as Error).message}`);
  }
  return Object.freeze({ trustedSources, ...resolveNumbers<keyof typeof PROXY_PROTOCOL>(PROXY_PROTOCOL, { headerTimeoutMs: given?.headerTimeoutMs }, 'proxyProtocol.') });
}
