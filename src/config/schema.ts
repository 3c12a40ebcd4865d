/**
 * The configuration file's schema: every key, its default and what it
 * expects. The error messages are phrased to follow "<value> is not ...",
 * so that a failure reads `port: 70000 is not a port number (0-65535)`.
 * docs/ferry.example.yaml lists every key with the default given here (a
 * test keeps the two equal).
 */
import net from 'node:net';
import { z } from 'zod';
import { parsePermissions, PERMISSION_HELP } from '../auth/permissions.js';
import { addressList } from '../protocol/address.js';
import { ANNOUNCE_HELP, parseAnnounce } from '../data/passive-address.js';
import { DEFAULTS, DEFENDER, DEFENDER_OTHER, DEFENDER_SCORES, HOOK_COMMAND, HOOKS, LIMITS, METRICS, UPLOAD_HOOK, WEBHOOK, PER_USER_LIMITS, PROXY_PROTOCOL, type NumberSetting } from '../defaults.js';
import { isHostName } from '../protocol/address.js';
import { parsePortRange } from '../server/options.js';
import { unreachableFileSize } from '../storage/s3-client.js';
import { TLS_POLICIES } from '../tls/options.js';
import { EVENT_NAMES } from '../observability/hook-event.js';
import { LOG_FORMATS } from '../observability/log-output.js';

const MAX = Number.MAX_SAFE_INTEGER;

export function wholeNumber(min: number, max = MAX) {
  const expected = max === MAX ? `a whole number of at least ${min}` : `a whole number from ${min} to ${max}`;
  return z.number({ error: expected }).int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
}

/** The schema of each whole-number setting in a table of src/defaults.ts, with its default. */
export function numberSettings<K extends string>(table: Readonly<Record<K, NumberSetting>>) {
  return Object.fromEntries(Object.entries<NumberSetting>(table).map(([name, s]) => [name, wholeNumber(s.min, s.max).default(s.default)])) as Record<K, z.ZodDefault<z.ZodNumber>>;
}

/** A nested group of settings, e.g. `limits:`. */
const section = <T extends z.core.$ZodLooseShape>(shape: T) => z.strictObject(shape, { error: 'a mapping of settings (indented key: value lines)' });

const bool = () => z.boolean({ error: 'true or false' });
const text = (expected: string) => z.string({ error: expected });
const checked = (expected: string, ok: (value: string) => boolean) =>
  z.string({ error: expected }).refine(ok, { error: expected });

const httpUrl = () => checked('an http:// or https:// URL', (v) => /^https?:\/\/[^\s]+$/.test(v) && URL.canParse(v));

export const permissionSpec = () => checked(PERMISSION_HELP, (v) => parsePermissions(v) !== null);

/** A virtual path inside the storage: '/', '/pub', 'alice', '/users/{username}'. */
export const homePath = () =>
  checked('a path inside the storage root, like /pub or /users/{username} (no "..")', (v) => v.length > 0 && !v.split('/').includes('..') && !v.includes('\0'));

const PORT_RANGE = 'a port range like 50000-50100 (1-65535)';

/**
 * What is wrong with a passive port range, phrased to follow "<value> is
 * not" (null when nothing is): a reversed one says so and shows the order.
 */
export function portRangeProblem(value: string): string | null {
  if (parsePortRange(value)) return null;
  const reversed = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(value);
  if (reversed && parsePortRange(`${reversed[2]}-${reversed[1]}`)) return `a port range from low to high (it is reversed); write ${reversed[2]}-${reversed[1]}`;
  return PORT_RANGE;
}

const ADDRESS_LIST = 'a list of IP addresses or CIDR ranges, like [192.168.1.0/24, 2001:db8::/32]';
/** An address or CIDR range, IPv4 or IPv6 (a users file's allowFrom, masqueradeAddress's from, the defender's lists). */
export const addressRange = () => checked('an IP address or CIDR range like 192.168.1.0/24', (v) => isAddressRange(v));

function isAddressRange(value: string): boolean {
  try {
    addressList([value]);
    return true;
  } catch {
    return false;
  }
}

const announce = () => checked(ANNOUNCE_HELP, (v) => parseAnnounce(v) !== null);

/** One rule of masqueradeAddress: clients in `from` (absent: everyone) are told `announce`. */
const passiveRule = section({
  from: z
    .union([addressRange(), z.array(addressRange()).min(1, { error: 'a list of at least one address or range (leave from out to match every client)' })], {
      error: 'an IP address or CIDR range like 10.0.0.0/8, or a list of them',
    })
    .optional(),
  // Optional here and required below, so that a rule without it is reported
  // as such rather than as "not a rule" (zod gives up on a union whose every
  // branch has a type error).
  announce: announce().optional(),
}).superRefine((rule, ctx) => {
  if (rule.announce === undefined) ctx.addIssue({ code: 'custom', path: ['announce'], message: ANNOUNCE_HELP });
}).transform(({ from, announce }) => ({ from, announce: announce! }));

const localStorage = section({
  type: z.literal('local'),
  root: text('a folder path').default('/srv/ftp'),
  fsync: bool().default(true),
});

const MIB = 1024 * 1024;
/** S3's limit on parts per multipart upload. */

const s3Storage = section({
  type: z.literal('s3'),
  bucket: checked('a bucket name (3-63 lowercase letters, digits, dots and dashes)', (v) => /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(v)),
  prefix: text('a key prefix, like incoming/ or users/{username}/').default(''),
  region: text('a region, like us-east-1').nullable().default(null),
  endpoint: httpUrl().nullable().default(null),
  forcePathStyle: bool().nullable().default(null),
  // At most 512 MiB: each upload holds (queueSize + 1) part buffers in memory.
  partSizeBytes: wholeNumber(5 * MIB, 512 * MIB).default(8 * MIB),
  queueSize: wholeNumber(1, 64).default(4),
  // Refused with the way out: the maximum file size is a policy for every storage now.
  maxFileSizeBytes: z.never({ error: 'a storage setting any more: set limits.maxFileSizeBytes (all users) or limits.perUser.maxFileSizeBytes instead; it applies to every storage' }).optional(),
  maxRenameKeys: wholeNumber(1).default(10_000),
  maxUploadBufferBytes: wholeNumber(0).default(0),
  socketTimeoutMs: wholeNumber(1).default(30_000),
  credentials: section({
    accessKeyId: text('an access key id'),
    secretAccessKey: text('a secret access key'),
    sessionToken: text('a session token').optional(),
  })
    .nullable()
    .default(null),
}).superRefine((s3, ctx) => {
  if (s3.maxUploadBufferBytes > 0 && s3.maxUploadBufferBytes < s3.partSizeBytes) {
    ctx.addIssue({ code: 'custom', path: ['maxUploadBufferBytes'], message: `0 (no limit) or at least partSizeBytes (${s3.partSizeBytes})` });
  }
});

/** The ports fetch refuses to connect to (the Fetch standard's "bad port" list): a hook there could never be reached. */
const FETCH_BAD_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135,
  137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720,
  1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);
/** A hook's URL: fetch refuses user:password@ in a URL and a few ports, so the file does too (the secret signs instead). */
const hookUrl = () =>
  checked('an http:// or https:// URL without user:password@ (requests are signed with secret), on a port HTTP clients may use (not 6000, 6667, ...)', (v) => {
    if (!/^https?:\/\/[^\s]+$/.test(v) || !URL.canParse(v)) return false;
    const url = new URL(v);
    return !url.username && !url.password && !FETCH_BAD_PORTS.has(Number(url.port));
  });
const EVENTS_HELP = `a list of at least one event name (${EVENT_NAMES.join(', ')})`;
const eventList = () => z.array(z.enum(EVENT_NAMES as [string, ...string[]], { error: `an event name (${EVENT_NAMES.join(', ')})` }), { error: EVENTS_HELP }).min(1, { error: EVENTS_HELP });
const absolutePath = (what: string) => checked(`an absolute path to ${what}`, (v) => v.startsWith('/'));
/** A webhook's or beforeUpload's key: `secret`, or `secretFile` (read at start and on reload), not both. */
const secretKeys = {
  secret: text('a text (the HMAC-SHA256 key of X-Ferry-Signature)').min(1, { error: 'a text of at least one character' }).nullable().default(null),
  secretFile: absolutePath('a file holding the secret').nullable().default(null),
};
const oneSecret = (hook: { secret: string | null; secretFile: string | null }, ctx: z.RefinementCtx) => {
  if (hook.secret !== null && hook.secretFile !== null) ctx.addIssue({ code: 'custom', path: ['secretFile'], message: 'null when secret is set (give one of secret and secretFile)' });
};

const hooksSection = section({
  commands: z
    .array(
      section({
        events: eventList(),
        command: z.array(text('a program or argument'), { error: 'a list: the program, then its arguments (no shell)' }).min(1, { error: 'a list of at least the program, then its arguments (no shell)' }),
        env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), text('a text'), { error: 'a mapping of environment variable names to texts' }).default({}),
        ...numberSettings(HOOK_COMMAND),
      }),
      { error: 'a list of command hooks (each with events: and command:)' },
    )
    .default([]),
  webhooks: z
    .array(section({ events: eventList(), url: hookUrl(), ...secretKeys, ...numberSettings(WEBHOOK) }).superRefine(oneSecret), {
      error: 'a list of webhooks (each with events: and url:)',
    })
    .default([]),
  ...numberSettings(HOOKS),
  // As authHook: a url turns it on.
  beforeUpload: section({ url: hookUrl().nullable().default(null), ...secretKeys, ...numberSettings(UPLOAD_HOOK) })
    .superRefine(oneSecret)
    .superRefine((hook, ctx) => {
      // A secret without a url would validate and do nothing.
      if (hook.url === null && (hook.secret !== null || hook.secretFile !== null)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'a URL to ask before each upload: its secret is set, but without url the hook is off' });
    })
    .prefault({}),
}).prefault({});

/** An address (or host name) to listen on. */
const listenHost = (expected: string) => checked(expected, (v) => net.isIP(v) !== 0 || isHostName(v));

export const configSchema = z.strictObject({
  host: listenHost('an address or host name to listen on, like 0.0.0.0, :: or localhost').default(DEFAULTS.host),
  port: wholeNumber(0, 65535).default(DEFAULTS.port),
  passivePorts: text(PORT_RANGE)
    .superRefine((v, ctx) => {
      const problem = portRangeProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .nullable()
    .default(null),
  masqueradeAddress: z
    .union([announce(), z.array(passiveRule, { error: 'a list of rules, each with from: and announce:' })], {
      error: `${ANNOUNCE_HELP}, or a list of rules (each "- from: RANGE" and "announce: ADDRESS")`,
    })
    .nullable()
    .default(null),
  banner: text('a text').default(DEFAULTS.greeting),
  workers: z.union([z.literal('auto'), wholeNumber(1, 256)], { error: 'a number of processes from 1 to 256, or auto' }).default(1),
  allowActiveMode: bool().default(DEFAULTS.allowActiveMode),
  uploadSha256: bool().default(DEFAULTS.uploadSha256),
  limits: section({
    ...numberSettings(LIMITS),
    perUser: section(numberSettings(PER_USER_LIMITS)).prefault({}),
  }).prefault({}),
  proxyProtocol: section({
    trustedSources: z.array(addressRange(), { error: 'a list of IP addresses or CIDR ranges' }).default([]),
    ...numberSettings(PROXY_PROTOCOL),
  }).prefault({}),
  storage: z.discriminatedUnion('type', [localStorage, s3Storage], { error: 'a storage with type: local or type: s3' }).prefault({ type: 'local' }),
  users: section({
    file: text('a path to a users file (YAML or JSON)').nullable().default(null),
    cacheTtlMs: wholeNumber(0).default(300_000),
  }).prefault({}),
  anonymous: section({
    enabled: bool().default(false),
    home: homePath().default('/'),
    permissions: permissionSpec().default('read'),
  }).prefault({}),
  authHook: section({
    url: httpUrl().nullable().default(null),
    timeoutMs: wholeNumber(1).default(5000),
    cacheTtlMs: wholeNumber(0).default(60_000),
  }).prefault({}),
  logging: section({
    level: z.enum(['debug', 'info', 'warn', 'error', 'silent'], { error: 'one of debug, info, warn, error, silent' }).default('info'),
    format: z.enum(LOG_FORMATS, { error: `one of ${LOG_FORMATS.join(', ')}` }).default('auto'),
    file: text('a path to a log file, like /var/log/ferry/ferry.log').min(1, { error: 'a path to a log file (null: standard output)' }).nullable().default(null),
    transferLog: text('a path to a transfer log file, like /var/log/ferry/xferlog').min(1, { error: 'a path to a transfer log file (null: none)' }).nullable().default(null),
  })
    .superRefine((logging, ctx) => {
      // Two formats in one file would be read by neither a log shipper nor an xferlog analyser.
      if (logging.file !== null && logging.file === logging.transferLog) ctx.addIssue({ code: 'custom', path: ['transferLog'], message: 'a file of its own, not logging.file' });
    })
    .prefault({}),
  tls: section({
    cert: text('a path to a PEM certificate chain (leaf first)').nullable().default(null),
    key: text('a path to the PEM private key of tls.cert').nullable().default(null),
    ca: text('a path to PEM CA certificates').nullable().default(null),
    implicitPort: wholeNumber(0, 65535).nullable().default(null),
    policy: z.enum(TLS_POLICIES, { error: `one of ${TLS_POLICIES.join(', ')}` }).default('login'),
    anonymousExempt: bool().default(true),
    requireSessionReuse: bool().default(true),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3'], { error: 'TLSv1.2 or TLSv1.3' }).default('TLSv1.2'),
    requestClientCert: bool().default(false),
  }).prefault({}),
  runAs: section({
    user: text('a user name or uid').nullable().default(null),
    group: text('a group name or gid').nullable().default(null),
  }).prefault({}),
  defender: section({
    enabled: bool().default(DEFENDER_OTHER.enabled),
    ...numberSettings(DEFENDER),
    banGrowth: z.number({ error: 'a number of at least 1' }).min(1, { error: 'a number of at least 1' }).default(DEFENDER_OTHER.banGrowth),
    scores: section(numberSettings(DEFENDER_SCORES)).prefault({}),
    allowList: z.array(addressRange(), { error: ADDRESS_LIST }).default([]),
    denyList: z.array(addressRange(), { error: ADDRESS_LIST }).default([]),
  })
    .superRefine((d, ctx) => {
      if (d.maxBanMs < d.banMs) ctx.addIssue({ code: 'custom', path: ['maxBanMs'], message: `at least banMs (${d.banMs})` });
    })
    .prefault({}),
  hooks: hooksSection,
  metrics: section({
    enabled: bool().default(METRICS.enabled),
    host: listenHost('an address to listen on, like 127.0.0.1 (this machine only), 0.0.0.0 or ::').default(METRICS.host),
    port: wholeNumber(0, 65535).default(METRICS.port),
    path: checked('a URL path starting with /, like /metrics', (v) => /^\/[A-Za-z0-9._~!$&'()*+,;=:@\/-]*$/.test(v)).default(METRICS.path),
  }).prefault({}),
  /** The local control socket `ferry ban` talks to; null: ferry-<port>.sock in the temporary folder (none with port 0). */
  controlSocket: checked('a path for a Unix socket, like /run/ferry/control.sock', (v) => v.trim().length > 0).nullable().default(null),
}).superRefine((config, ctx) => {
  // A maximum file size no S3 upload can reach (10,000 parts) would fail late, at part 10,001.
  if (config.storage.type !== 's3') return;
  const { partSizeBytes } = config.storage;
  for (const at of [['limits', 'maxFileSizeBytes'], ['limits', 'perUser', 'maxFileSizeBytes']] as const) {
    const max = at.length === 2 ? config.limits.maxFileSizeBytes : config.limits.perUser.maxFileSizeBytes;
    const problem = unreachableFileSize(max, partSizeBytes);
    if (problem) ctx.addIssue({ code: 'custom', path: [...at], message: problem });
  }
});

export type Config = z.infer<typeof configSchema>;

/** Where the files are, for people: the folder, or s3://bucket/prefix. */
export function storageLocation(storage: Config['storage']): string {
  return storage.type === 'local' ? storage.root : `s3://${storage.bucket}/${storage.prefix}`;
}
