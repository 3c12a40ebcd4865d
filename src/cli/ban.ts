/**
 * `ferry ban list|add|remove`: the defender's bans on a running server,
 * through its control socket (server/control-socket.ts). Which socket:
 * --socket, else the controlSocket of the configuration named by --config
 * (or FERRY_CONFIG), else the default for its port. Both sides of the
 * conversation are here: `banHandlers` is what the server answers with.
 */
import { CONFIG_ENV, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Defender } from '../limits/defender.js';
import type { BanInfo } from '../observability/events.js';
import { ControlError, controlRequest, defaultControlSocketPath, type ControlHandler } from '../server/control-socket.js';
import type { Shared } from '../server/shared.js';
import { fail, failWithConfig } from './fail.js';

export interface BanFlags {
  config?: string;
  socket?: string;
}

/** The control commands the server answers for the defender (in cluster mode, the primary). */
export function banHandlers(defender: Shared<Defender>): Record<string, ControlHandler> {
  return {
    'ban.list': () => defender.list(),
    'ban.add': (args) => defender.ban(String(args.address), { durationMs: (args.durationMs as number | null | undefined) ?? null, reason: args.reason as string | undefined }),
    'ban.remove': (args) => defender.unban(String(args.address)),
  };
}

/** "90s", "30m", "12h", "7d" -> milliseconds; null when not a duration. */
function parseDuration(text: string): number | null {
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  if (!match) return null;
  const ms = Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return ms > 0 && Number.isSafeInteger(ms) ? ms : null;
}

/** Where a server with `config` listens for control requests; null for none (port 0 without controlSocket: no port to name it by). */
export function controlSocketPath(config: Config): string | null {
  return config.controlSocket ?? (config.port === 0 ? null : defaultControlSocketPath(config.port));
}

async function socketPath(flags: BanFlags): Promise<string> {
  if (flags.socket) return flags.socket;
  const file = flags.config ?? process.env[CONFIG_ENV] ?? null;
  let config: Config;
  try {
    // The same environment as the server's, so both agree on the path.
    config = (await loadConfig({ file, env: process.env })).config;
  } catch (err) {
    failWithConfig(err);
  }
  const found = controlSocketPath(config);
  if (!found) fail(`${file ?? 'this configuration'} has port 0 and no controlSocket, so its server has no control socket; set controlSocket, or pass --socket PATH.`, 1);
  return found;
}

async function request(flags: BanFlags, command: string, args?: Record<string, unknown>): Promise<unknown> {
  const path = await socketPath(flags);
  try {
    return await controlRequest(path, command, args);
  } catch (err) {
    if (err instanceof ControlError) fail(err.message, 1);
    throw err;
  }
}

const until = (ban: BanInfo) => ban.expiresAt ?? 'until removed';

export async function listBans(flags: BanFlags & { json?: boolean }): Promise<void> {
  const bans = (await request(flags, 'ban.list')) as BanInfo[];
  if (flags.json) {
    process.stdout.write(JSON.stringify(bans, null, 2) + '\n');
    return;
  }
  if (bans.length === 0) {
    process.stdout.write('No address is banned.\n');
    return;
  }
  const width = Math.max(...bans.map((b) => b.address.length), 'ADDRESS'.length);
  const untilWidth = Math.max(...bans.map((b) => until(b).length), 'UNTIL'.length);
  const lines = [`${'ADDRESS'.padEnd(width)}  ${'UNTIL'.padEnd(untilWidth)}  REASON`];
  for (const ban of bans) lines.push(`${ban.address.padEnd(width)}  ${until(ban).padEnd(untilWidth)}  ${ban.manual ? `${ban.reason} (by hand)` : ban.reason}`);
  process.stdout.write(lines.join('\n') + '\n');
}

export async function addBan(address: string, flags: BanFlags & { duration?: string; reason?: string }): Promise<void> {
  let durationMs: number | null = null;
  if (flags.duration !== undefined) {
    durationMs = parseDuration(flags.duration);
    if (durationMs === null) fail(`--duration ${flags.duration}: expected a number and a unit, like 90s, 30m, 12h or 7d (leave it out to ban until removed).`);
  }
  const ban = (await request(flags, 'ban.add', { address, durationMs, reason: flags.reason })) as BanInfo;
  const end = ban.expiresAt ? `until ${ban.expiresAt}` : 'until removed (a restart forgets it: put lasting bans in defender.denyList)';
  process.stdout.write(`Banned ${ban.address} ${end}. New connections from it are refused; its open sessions continue.\n`);
}

export async function removeBan(address: string, flags: BanFlags): Promise<void> {
  const ban = (await request(flags, 'ban.remove', { address })) as BanInfo | null;
  if (ban) process.stdout.write(`Lifted the ban on ${ban.address}; its score is reset.\n`);
  else process.stdout.write(`${address} was not banned; its score, if any, is reset.\n`);
}
