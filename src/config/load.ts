/**
 * One validated Config from, in rising precedence: the defaults, the YAML
 * file, FERRY_* environment variables, and command-line flags. Relative
 * paths in the file are relative to the file's folder; relative paths from
 * the environment or flags are relative to the current folder.
 */
import { realpath, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYamlValue } from 'yaml';
import { parsePortRange } from '../server/options.js';
import { accessAs } from '../server/privileges.js';
import { configSchema, type Config } from './schema.js';
import { readUsersFile } from './users-file.js';
import { closest, ConfigError, leafPaths, leafSchema, parseYaml, settingNamed, validate, type Source } from './validate.js';
import { envName as fieldEnvName } from '../observability/hook-event.js';

export interface ConfigOverride {
  path: string[];
  value: unknown;
  /** Named in error messages, e.g. '--port'. */
  source: string;
}

export interface LoadOptions {
  /** The YAML file; null or absent for a configuration from flags alone. */
  file?: string | null;
  /** Starting values when there is no file (the zero-config CLI's preset). */
  preset?: Record<string, unknown>;
  /** FERRY_* variables to apply, e.g. process.env. Default: none. */
  env?: NodeJS.ProcessEnv;
  overrides?: readonly ConfigOverride[];
}

export interface LoadedConfig {
  config: Config;
  /** The file's absolute path, or null. */
  file: string | null;
  /** Things that work but are probably not what the operator wants. */
  warnings: string[];
}

/** FERRY_CONFIG names the file; every other FERRY_* variable sets one key. */
export const CONFIG_ENV = 'FERRY_CONFIG';
/** The password of `ferry --user NAME` (src/cli/cli-users.ts): not a setting either. */
export const USER_PASSWORD_ENV = 'FERRY_USER_PASSWORD';

/** FERRY_ and the key path in upper snake case (limits.maxConnections → FERRY_LIMITS_MAX_CONNECTIONS), as hooks name event fields. */
export const envName = (keyPath: readonly string[]) => fieldEnvName(keyPath.join('_'));

const ENV_KEYS = new Map(leafPaths(configSchema).map((p) => [envName(p), p]));
/** Keys holding paths, resolved against the folder of whatever set them. */
const PATH_KEYS = [
  ['storage', 'root'],
  ['users', 'file'],
  ['tls', 'cert'],
  ['tls', 'key'],
  ['tls', 'ca'],
  ['controlSocket'],
  ['logging', 'file'],
  ['logging', 'transferLog'],
];

export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const file = options.file ? path.resolve(options.file) : null;
  let raw: Record<string, unknown> = structuredClone(options.preset ?? {});
  let source: Source | null = null;
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`${options.file}: cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
    }
    let value: unknown;
    ({ source, value } = parseYaml(path.basename(file), text));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError([`${path.basename(file)}: expected a mapping of settings (key: value lines) at the top level`]);
    }
    raw = value as Record<string, unknown>;
    for (const keyPath of PATH_KEYS) resolveAt(raw, keyPath, path.dirname(file));
  }
  const warnings: string[] = [];
  const sources = new Map<string, string>();
  // Without a file, FERRY_* names were not written for Ferry's sake: an unknown one is only a warning.
  for (const override of [...envOverrides(options.env ?? {}, file ? null : warnings), ...(options.overrides ?? [])]) {
    setIn(raw, override.path, override.value);
    if (PATH_KEYS.some((k) => k.join('.') === override.path.join('.'))) resolveAt(raw, override.path, process.cwd());
    sources.set(override.path.join('.'), override.source);
  }
  // `local` is the one storage type without settings elsewhere: it may go unsaid.
  const storage = raw.storage;
  if (storage && typeof storage === 'object' && !Array.isArray(storage) && !('type' in storage)) (storage as Record<string, unknown>).type = 'local';
  const config = validate(configSchema, raw, source, sources);
  if (config.storage.type === 'local') config.storage.root = path.resolve(config.storage.root);
  if (config.users.file) config.users.file = path.resolve(config.users.file);
  warnings.push(...(await crossCheck(config, sources)));
  return { config, file, warnings };
}

function resolveAt(raw: Record<string, unknown>, keyPath: string[], base: string): void {
  let parent: unknown = raw;
  for (const key of keyPath.slice(0, -1)) parent = parent && typeof parent === 'object' ? (parent as Record<string, unknown>)[key] : undefined;
  if (!parent || typeof parent !== 'object') return;
  const last = keyPath[keyPath.length - 1]!;
  const value = (parent as Record<string, unknown>)[last];
  if (typeof value === 'string' && value !== '') (parent as Record<string, unknown>)[last] = path.resolve(base, value);
}

function envOverrides(env: NodeJS.ProcessEnv, warnings: string[] | null): ConfigOverride[] {
  const found: ConfigOverride[] = [];
  const problems: string[] = [];
  for (const [name, rawValue] of Object.entries(env)) {
    if (!name.startsWith('FERRY_') || name === CONFIG_ENV || name === USER_PASSWORD_ENV || rawValue === undefined) continue;
    const keyPath = ENV_KEYS.get(name);
    if (!keyPath) {
      // FERRY_MAXCONNECTIONS names a setting without its section: FERRY_LIMITS_MAX_CONNECTIONS.
      const elsewhere = settingNamed(configSchema, name.slice('FERRY_'.length));
      const suggestion = elsewhere ? envName(elsewhere.split('.')) : closest(name, [...ENV_KEYS.keys()]);
      (warnings ?? problems).push(`environment ${name}: unknown setting${suggestion ? `; did you mean ${suggestion}?` : ''}`);
      continue;
    }
    found.push({ path: keyPath, value: envValue(keyPath, rawValue), source: `environment ${name}` });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return found;
}

/** The YAML reading of the text (numbers, booleans, null) when the key accepts it, else the text itself. */
function envValue(keyPath: string[], text: string): unknown {
  const schemas = leafSchema(configSchema, keyPath);
  let parsed: unknown;
  try {
    parsed = parseYamlValue(text);
  } catch {
    return text;
  }
  if (schemas.some((s) => s.safeParse(parsed).success)) return parsed;
  return schemas.some((s) => s.safeParse(text).success) ? text : parsed;
}

function setIn(target: Record<string, unknown>, keyPath: readonly string[], value: unknown): void {
  let at = target;
  for (const key of keyPath.slice(0, -1)) {
    if (at[key] === null || typeof at[key] !== 'object') at[key] = {};
    at = at[key] as Record<string, unknown>;
  }
  at[keyPath[keyPath.length - 1]!] = value;
}

/**
 * Why the config lets nobody in (users from the command line aside), as a
 * warning to print, or null. A users file without users counts: it reads
 * as "configured" yet refuses every login. An unreadable or invalid users
 * file is left to the build that reads it, which stops with its errors.
 */
export async function nobodyCanLogIn(config: Config): Promise<string | null> {
  const others = 'authHook.url or anonymous.enabled';
  if (config.anonymous.enabled || config.authHook.url) return null;
  if (!config.users.file) return `nobody can log in: set users.file, ${others}`;
  const users = await readUsersFile(config.users.file).catch(() => null);
  return users && Object.keys(users).length === 0 ? `nobody can log in: ${config.users.file} has no users; add one with \`ferry user add\`, or set ${others}` : null;
}

/** Rules that span keys or look at the disk. Errors stop the start (or the reload); warnings are printed. */
async function crossCheck(config: Config, sources: ReadonlyMap<string, string>): Promise<string[]> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const named = (key: string) => sources.get(key) ?? key;
  const range = config.passivePorts ? parsePortRange(config.passivePorts) : null;
  if (range && config.port >= range.min && config.port <= range.max) {
    problems.push(`${named('passivePorts')}: ${config.passivePorts} includes the control port ${config.port}; choose a range without it`);
  }
  problems.push(...(await tlsProblems(config.tls, named)));
  if (config.storage.type === 'local') {
    const { root } = config.storage;
    const info = await stat(root).catch(() => null);
    if (!info) problems.push(`${named('storage.root')}: ${root}: no such folder; create it or name an existing folder`);
    else if (!info.isDirectory()) problems.push(`${named('storage.root')}: ${root}: not a folder; name a folder`);
    // Real paths, so that a symlinked root cannot hide the users file inside it.
    if (info && config.users.file && isInside(await realpath(root), await realParent(config.users.file))) {
      problems.push(`${named('users.file')}: ${config.users.file} is inside storage.root, so users could download the password hashes; move it out`);
    }
    if (info?.isDirectory()) warnings.push(...(await runAsRootWarnings(config.runAs, root, named('storage.root'))));
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return [...warnings, ...policyWarnings(config, named)];
}

/** Settings that are valid but probably not what the operator meant: they weaken a protection or can never apply. */
function policyWarnings(config: Config, named: (key: string) => string): string[] {
  const warnings: string[] = [];
  const anyAddress = config.proxyProtocol.trustedSources.filter((range) => /^(0\.0\.0\.0|::)\/0$/.test(range));
  if (anyAddress.length > 0) {
    warnings.push(`${named('proxyProtocol.trustedSources')}: ${anyAddress.join(', ')} trusts every address to say who the client is: any client can then claim any address (one on defender.allowList, or someone else's, to get them banned); list only your load balancers`);
  }
  const { defender } = config;
  if (defender.enabled && Object.values(defender.scores).every((score) => score === 0)) {
    warnings.push(`${named('defender.scores')}: every score is 0, so the defender never bans anyone though defender.enabled is true; set enabled: false if that is meant`);
  }
  const rules = Array.isArray(config.masqueradeAddress) ? config.masqueradeAddress : [];
  const catchAll = rules.findIndex((rule) => !rule.from);
  if (catchAll !== -1 && catchAll < rules.length - 1) {
    warnings.push(`${named('masqueradeAddress')}: rule ${catchAll + 1} has no from: and matches every client, so the ${rules.length - catchAll - 1} rule(s) after it never apply; put it last`);
  }
  return warnings;
}

/**
 * A root the runAs user cannot use fails logins only once a client comes
 * (homes are created and opened after the drop of privileges): say so at
 * check-config and at start, with the fix.
 */
async function runAsRootWarnings(runAs: Config['runAs'], root: string, setting: string): Promise<string[]> {
  const can = await accessAs(runAs, root);
  if (!can) return [];
  const owner = runAs.group ? `${runAs.user}:${runAs.group}` : runAs.user;
  if (!can.read) {
    return [
      `${setting}: ${root}: the runAs user ${runAs.user} cannot enter or list it, so every login will be refused (421, the server cannot open the home folder); e.g. \`chown -R ${owner} ${root}\`, or name another runAs.user`,
    ];
  }
  if (!can.write) {
    return [
      `${setting}: ${root}: the runAs user ${runAs.user} cannot create folders in it, so users whose home folder does not exist yet cannot log in (421) and uploads into the root fail; e.g. \`chown ${owner} ${root}\`, or create each home owned by ${runAs.user}`,
    ];
  }
  return [];
}

/** The real path of a file that may not exist yet: its folder's real path plus its name. */
async function realParent(file: string): Promise<string> {
  const real = await realpath(file).catch(() => null);
  if (real) return real;
  const dir = await realpath(path.dirname(file)).catch(() => path.dirname(file));
  return path.join(dir, path.basename(file));
}

function isInside(dir: string, file: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

const TLS_DEFAULTS = configSchema.shape.tls.parse(undefined);

/** tls: cert and key go together, the files must be readable, and the rest needs them. */
async function tlsProblems(tls: Config['tls'], named: (key: string) => string): Promise<string[]> {
  if (!tls.cert && !tls.key) {
    // Any TLS setting without a certificate would be silently plain FTP: e.g. `policy: data` sending passwords in the clear.
    const given = (Object.keys(tls) as Array<keyof Config['tls']>).find((key) => JSON.stringify(tls[key]) !== JSON.stringify(TLS_DEFAULTS[key]));
    return given ? [`${named(`tls.${given}`)}: needs tls.cert and tls.key (--tls-cert, --tls-key); without them Ferry serves plain FTP only`] : [];
  }
  if (!tls.cert || !tls.key) return [`${named(tls.cert ? 'tls.cert' : 'tls.key')}: tls.cert and tls.key go together; give the certificate chain and its private key`];
  const problems: string[] = [];
  for (const key of ['cert', 'key', 'ca'] as const) {
    const file = tls[key];
    if (file) await readFile(file).catch((err: NodeJS.ErrnoException) => problems.push(`${named(`tls.${key}`)}: ${file}: cannot read it (${err.code ?? err.message}); \`ferry cert --self-signed --host NAME\` makes a pair`));
  }
  return problems;
}
