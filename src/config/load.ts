/**
 * One validated Config from, in rising precedence: the defaults, the YAML
 * file, FERRY_* environment variables, and command-line flags. Relative
 * paths in the file are relative to the file's folder.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYamlValue } from 'yaml';
import { parsePortRange } from '../server/options.js';
import { configSchema, type Config } from './schema.js';
import { closest, ConfigError, leafPaths, leafSchema, parseYaml, validate, type Source } from './validate.js';

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
  /** Where FERRY_* variables are read; default process.env. */
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

const snake = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
export const envName = (keyPath: readonly string[]) => `FERRY_${keyPath.map(snake).join('_')}`;

const ENV_KEYS = new Map(leafPaths(configSchema).map((p) => [envName(p), p]));

export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const file = options.file ? path.resolve(options.file) : null;
  let raw: unknown = structuredClone(options.preset ?? {});
  let source: Source | null = null;
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`${options.file}: cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
    }
    ({ source, value: raw } = parseYaml(path.basename(file), text));
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ConfigError([`${path.basename(file)}: expected a mapping of settings (key: value lines) at the top level`]);
    }
  }
  const sources = new Map<string, string>();
  for (const override of [...envOverrides(options.env ?? process.env), ...(options.overrides ?? [])]) {
    setIn(raw as Record<string, unknown>, override.path, override.value);
    sources.set(override.path.join('.'), override.source);
  }
  const config = validate(configSchema, raw, source, sources);
  const baseDir = file ? path.dirname(file) : process.cwd();
  if (config.storage.type === 'local') config.storage.root = path.resolve(baseDir, config.storage.root);
  if (config.users.file) config.users.file = path.resolve(baseDir, config.users.file);
  return { config, file, warnings: crossCheck(config) };
}

function envOverrides(env: NodeJS.ProcessEnv): ConfigOverride[] {
  const found: ConfigOverride[] = [];
  const problems: string[] = [];
  for (const [name, rawValue] of Object.entries(env)) {
    if (!name.startsWith('FERRY_') || name === CONFIG_ENV || rawValue === undefined) continue;
    const keyPath = ENV_KEYS.get(name);
    if (!keyPath) {
      const suggestion = closest(name, [...ENV_KEYS.keys()]);
      problems.push(`environment ${name}: unknown setting${suggestion ? `; did you mean ${suggestion}?` : ''}`);
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

/** Rules that span keys. Errors stop the start; warnings are printed. */
function crossCheck(config: Config): string[] {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (nobodyCanLogIn(config)) warnings.push('nobody can log in: set users.file, authHook.url or anonymous.enabled');
  const range = config.passivePorts ? parsePortRange(config.passivePorts) : null;
  if (range && config.port >= range.min && config.port <= range.max) {
    problems.push(`passivePorts: ${config.passivePorts} includes the control port ${config.port}; choose a range without it`);
  }
  if (config.users.file && config.storage.type === 'local' && isInside(config.storage.root, config.users.file)) {
    problems.push(`users.file: ${config.users.file} is inside storage.root, so users could download the password hashes; move it out`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return warnings;
}

/** True when the config lets nobody in (users from the command line aside). */
export function nobodyCanLogIn(config: Config): boolean {
  return !config.anonymous.enabled && !config.users.file && !config.authHook.url;
}

function isInside(dir: string, file: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}
