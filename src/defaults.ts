/**
 * The one table of defaults. The library's options (server/options.ts) and
 * the configuration file's schema (config/schema.ts) are both made from it,
 * so a default or a bound changed here changes for embedders and operators
 * alike; docs/ferry.example.yaml repeats the defaults for people (a test
 * keeps it equal to the schema).
 */

/** A whole-number setting: its default and the values it accepts. */
export interface NumberSetting {
  readonly default: number;
  readonly min: number;
  readonly max?: number;
}

export const DEFAULTS = Object.freeze({
  host: '0.0.0.0',
  port: 2121,
  greeting: 'Ferry FTP server ready.',
  allowActiveMode: true,
  /** How long an awaited hook (server.hook) may take before its action is refused with 451. */
  hookTimeoutMs: 5000,
  /** SHA-256 of each upload as it streams in (file-received's sha256; S3's ferry-sha256): on by default, switchable off for its CPU (docs/events.md). */
  uploadSha256: true,
});

/**
 * `metrics:` in the config file. Off by default; on, a Prometheus endpoint
 * on its own listener, on this machine only unless `host` says otherwise.
 * 9464: in the range Prometheus exporters use (9100-9999), free of the
 * common ones (node exporter 9100, Prometheus 9090, Alertmanager 9093); it
 * is also OpenTelemetry's Prometheus exporter default, so a host running
 * that too sets another port.
 */
export const METRICS = Object.freeze({
  enabled: false,
  host: '127.0.0.1',
  port: 9464,
  path: '/metrics',
});

/** `limits:` in the config file; flat options of the same names in the library. Units are in the names. */
export const LIMITS = Object.freeze({
  maxConnections: { default: 512, min: 1 },
  maxConnectionsPerIp: { default: 32, min: 1 },
  maxLoginAttempts: { default: 3, min: 1 },
  loginFailureDelayMs: { default: 1000, min: 0 },
  maxCommandBytes: { default: 8192, min: 512, max: 1 << 20 },
  idleTimeoutMs: { default: 300_000, min: 1 },
  loginTimeoutMs: { default: 60_000, min: 1 },
  dataConnectTimeoutMs: { default: 30_000, min: 1 },
  dataIdleTimeoutMs: { default: 300_000, min: 1 },
  uploadSettleMs: { default: 20, min: 0, max: 10_000 },
  shutdownGraceMs: { default: 10_000, min: 0 },
  /** The largest file anyone may store (a user's own cap may be smaller); 0 = no limit. */
  maxFileSizeBytes: { default: 0, min: 0 },
  /** All users together, per direction (per user: PER_USER_LIMITS). 0: no limit. */
  downloadBytesPerSecond: { default: 0, min: 0 },
  uploadBytesPerSecond: { default: 0, min: 0 },
  /** HASH and X* commands running at once in one process (each worker of a cluster); 450 beyond. */
  maxConcurrentHashes: { default: 4, min: 1 },
} satisfies Record<string, NumberSetting>);

/**
 * What each user may do, unless the user's own entry says otherwise
 * (`limits.perUser` in the config file, `perUserLimits` in the library).
 * 0 is no limit: connections and password guessers are limited by default,
 * a known user's use of the server is the operator's choice.
 */
export const PER_USER_LIMITS = Object.freeze({
  maxSessions: { default: 0, min: 0 },
  downloadBytesPerSecond: { default: 0, min: 0 },
  uploadBytesPerSecond: { default: 0, min: 0 },
  quotaBytes: { default: 0, min: 0 },
  quotaFiles: { default: 0, min: 0 },
  maxFileSizeBytes: { default: 0, min: 0 },
} satisfies Record<string, NumberSetting>);

/**
 * `proxyProtocol:` in the config file and the library. Its other key,
 * `trustedSources`, defaults to none: PROXY protocol off.
 */
export const PROXY_PROTOCOL = Object.freeze({
  // HAProxy's spec asks for at least 3 s, to cover a retransmitted segment.
  headerTimeoutMs: { default: 5000, min: 1 },
} satisfies Record<string, NumberSetting>);

export type LimitName = keyof typeof LIMITS;
export type PerUserLimitName = keyof typeof PER_USER_LIMITS;

/**
 * `defender:` in the config file, `defender: {...}` in the library
 * (limits/defender.ts). On by default, with thresholds no real user reaches:
 * a failed login scores 2, so 10 within 10 minutes ban, for 15 minutes the
 * first time.
 */
export const DEFENDER = Object.freeze({
  threshold: { default: 20, min: 1 },
  windowMs: { default: 600_000, min: 1 },
  banMs: { default: 900_000, min: 1 },
  maxBanMs: { default: 86_400_000, min: 1 },
} satisfies Record<string, NumberSetting>);

/** What each offence adds to an address's score (`defender.scores`); 0 ignores that kind. */
export const DEFENDER_SCORES = Object.freeze({
  loginFailed: { default: 2, min: 0 },
  limitExceeded: { default: 1, min: 0 },
  protocolAbuse: { default: 5, min: 0 },
} satisfies Record<string, NumberSetting>);

/** The defender's settings that are not whole numbers. */
export const DEFENDER_OTHER = Object.freeze({
  enabled: true,
  /** Each later ban of an address lasts this many times the previous one (at least 1). */
  banGrowth: 2,
});

/** `hooks:` in the config file (observability/event-hooks.ts): per process, each kind (commands, webhooks) its own. */
export const HOOKS = Object.freeze({
  concurrency: { default: 4, min: 1, max: 1024 },
  queueSize: { default: 1000, min: 0, max: 1_000_000 },
} satisfies Record<string, NumberSetting>);

/** One command of `hooks.commands`. */
export const HOOK_COMMAND = Object.freeze({
  timeoutMs: { default: 30_000, min: 1 },
} satisfies Record<string, NumberSetting>);

/** One webhook of `hooks.webhooks`. */
export const WEBHOOK = Object.freeze({
  timeoutMs: { default: 10_000, min: 1 },
  retries: { default: 3, min: 0, max: 20 },
  retryDelayMs: { default: 1000, min: 1 },
} satisfies Record<string, NumberSetting>);

/** `hooks.beforeUpload`: its timeout; the server's hookTimeoutMs still bounds it. */
export const UPLOAD_HOOK = Object.freeze({
  timeoutMs: { default: 5000, min: 1 },
} satisfies Record<string, NumberSetting>);

/** A whole-number option: `value`, or `fallback` when absent; a TypeError naming it when out of bounds. */
export function wholeNumberOption(name: string, value: number | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    const expected = max === Number.MAX_SAFE_INTEGER ? `a whole number of at least ${min}` : `a whole number from ${min} to ${max}`;
    throw new TypeError(`${name}: ${String(value)} is not ${expected}`);
  }
  return value;
}

/** Every setting of `table`, from `given` or its default, each checked against its bounds (`prefix` names its section). */
export function resolveNumbers<K extends string>(table: Readonly<Record<K, NumberSetting>>, given: Partial<Record<K, number>> | undefined, prefix = ''): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const name of Object.keys(table) as K[]) {
    const { default: fallback, min, max } = table[name];
    out[name] = wholeNumberOption(prefix + name, given?.[name], fallback, min, max);
  }
  return out;
}
