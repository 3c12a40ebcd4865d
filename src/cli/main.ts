#!/usr/bin/env node
/**
 * The `ferry` command. With no arguments it serves the current directory
 * read-only to anonymous users on port 2121, like `python -m pyftpdlib`.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { AnonymousAuthenticator } from '../auth/anonymous.js';
import { ALL_PERMISSIONS, READ_PERMISSIONS, type Authenticator } from '../auth/types.js';
import { UserListAuthenticator, type ListedUser } from '../auth/user-list.js';
import { parsePortRange, resolveOptions, type FtpServerOptions } from '../server/options.js';
import { createServer, type FtpServer } from '../server/server.js';
import { ClusterPrimary, clusterWorkerSettings, runClusterWorker } from '../server/cluster.js';
import { hashPassword } from '../auth/password.js';
import type { Logger } from '../observability/logger.js';
import { LocalStorage } from '../storage/local.js';
import { S3Storage } from '../storage/s3.js';
import type { Storage } from '../storage/types.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

interface ServeFlags {
  root: string;
  fsync: boolean;
  workers: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  host: string;
  port: number;
  user: Array<{ username: string; password: string }>;
  write: boolean;
  passivePorts?: { min: number; max: number };
  masquerade?: string;
  logLevel: string;
  s3?: { bucket: string; prefix: string };
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
}

function parseWorkers(value: string): number {
  if (value === 'auto') return os.availableParallelism();
  const workers = Number(value);
  if (!/^\d+$/.test(value) || workers < 1 || workers > 256) throw new InvalidArgumentError('expected a number of processes from 1 to 256, or auto (one per CPU).');
  return workers;
}

function parseCount(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1) throw new InvalidArgumentError('expected a whole number of at least 1.');
  return count;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('expected a port number from 0 to 65535.');
  return port;
}

function collectUser(value: string, previous: ServeFlags['user']): ServeFlags['user'] {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new InvalidArgumentError('expected NAME:PASSWORD, e.g. --user alice:s3cret');
  const username = value.slice(0, colon);
  const password = value.slice(colon + 1);
  if (!password) throw new InvalidArgumentError(`the password for ${username} is empty; give one after the colon.`);
  if (previous.some((u) => u.username === username)) throw new InvalidArgumentError(`user ${username} is given twice.`);
  return [...previous, { username, password }];
}

function parseIpv4(value: string): string {
  if (!net.isIPv4(value)) throw new InvalidArgumentError(`"${value}" is not an IPv4 address (PASV can only announce IPv4).`);
  return value;
}

function parseRange(value: string): { min: number; max: number } {
  const range = parsePortRange(value);
  if (!range) throw new InvalidArgumentError(`"${value}" is not a port range like 50000-50100 (1-65535).`);
  return range;
}

/** s3://BUCKET[/PREFIX]; the prefix may hold {username} for one folder per user. */
function parseS3Url(value: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(value);
  if (!match) throw new InvalidArgumentError('expected s3://BUCKET or s3://BUCKET/PREFIX, e.g. s3://camera-drops/incoming');
  return { bucket: match[1]!, prefix: match[2] ?? '' };
}

function parseUrl(value: string): string {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) throw new InvalidArgumentError('expected an http:// or https:// URL.');
  return value;
}

/**
 * The storage each user gets: the folder (one LocalStorage for everyone: it
 * keeps no per-session state), or the bucket (one S3 client for everyone;
 * a {username} prefix gives each user their own). Credentials come from the
 * AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, roles).
 */
function storageFromFlags(flags: ServeFlags, root: string, logger: Logger): (username: string) => Storage {
  if (!flags.s3) {
    const local = new LocalStorage(root, { fsync: flags.fsync });
    return () => local;
  }
  const s3 = new S3Storage({
    bucket: flags.s3.bucket,
    prefix: flags.s3.prefix,
    endpoint: flags.s3Endpoint,
    region: flags.s3Region,
    // Self-hosted stores (MinIO, Ceph) want path-style URLs; AWS prefers virtual-hosted ones.
    forcePathStyle: flags.s3PathStyle ?? flags.s3Endpoint !== undefined,
    logger,
  });
  return (username) => s3.forUser(username);
}

/** What the banner says is served. */
function servedLocation(flags: ServeFlags, root: string): string {
  return flags.s3 ? `s3://${flags.s3.bucket}/${flags.s3.prefix}` : root;
}

/** Addresses a client on this machine or the LAN can use to reach `host`. */
function reachableAddresses(host: string): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [host];
  const found = ['127.0.0.1'];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const item of list ?? []) if (item.family === 'IPv4' && !item.internal) found.push(item.address);
  }
  return found;
}

async function serve(flags: ServeFlags): Promise<void> {
  const root = path.resolve(flags.root);
  if (!flags.s3) {
    const rootInfo = await stat(root).catch(() => null);
    if (!rootInfo) fail(`--root ${flags.root}: no such folder. Pass an existing folder to serve.`);
    if (!rootInfo.isDirectory()) fail(`--root ${flags.root}: not a folder. Pass an existing folder to serve.`);
  }
  const logger = pino({ level: flags.logLevel, base: cluster.isWorker ? { worker: clusterWorkerSettings().index } : undefined });

  if (cluster.isWorker) return serveAsWorker(flags, root, logger);
  if (flags.workers > 1) return serveAsPrimary(flags, root, logger);

  const server = await buildServer(flags, root, logger, {});
  try {
    await server.listen();
  } catch (err) {
    failToListen(flags, err);
  }
  printBanner(flags, root, server.address()!.port);
  onSignals(server.options.shutdownGraceMs, () => server.close(), () => logger.info('SIGHUP: nothing to reload without a configuration file'));
}

/** The server every mode runs: the same authenticator, storage and limits. */
async function buildServer(flags: ServeFlags, root: string, logger: Logger, overrides: Partial<FtpServerOptions>): Promise<FtpServer> {
  const permissions = flags.write ? ALL_PERMISSIONS : READ_PERMISSIONS;
  const storageFor = storageFromFlags(flags, root, logger);
  // Keep only scrypt hashes in memory, as a deployment with a users file would.
  const users = await Promise.all(
    flags.user.map(
      async (u): Promise<ListedUser> => ({ username: u.username, passwordHash: await hashPassword(u.password), storage: storageFor(u.username), permissions }),
    ),
  );
  const authenticator: Authenticator =
    users.length === 0 ? new AnonymousAuthenticator({ storage: storageFor('anonymous'), permissions }) : new UserListAuthenticator(users);
  let server: FtpServer;
  try {
    server = createServer({ ...flagOptions(flags), authenticator, logger, ...overrides });
  } catch (err) {
    fail((err as Error).message);
  }
  server.on('error', (err) => logger.error({ err }, 'server error'));
  return server;
}

async function serveAsPrimary(flags: ServeFlags, root: string, logger: Logger): Promise<void> {
  let primary: ClusterPrimary;
  let shutdownGraceMs: number;
  try {
    // Validate every setting once, here, before any worker starts.
    const options = resolveOptions({ ...flagOptions(flags), authenticator: { authenticate: async () => null } });
    primary = new ClusterPrimary({ ...options, workers: flags.workers, logger });
    shutdownGraceMs = options.shutdownGraceMs;
  } catch (err) {
    fail((err as Error).message);
  }
  let address: net.AddressInfo;
  try {
    address = await primary.start();
  } catch (err) {
    await primary.stop(0);
    failToListen(flags, err);
  }
  printBanner(flags, root, address.port);
  onSignals(shutdownGraceMs, () => primary.stop(), () => primary.reload());
}

async function serveAsWorker(flags: ServeFlags, root: string, logger: Logger): Promise<void> {
  const { passivePorts } = clusterWorkerSettings();
  // The primary enforces the connection limits for the whole cluster.
  const server = await buildServer(flags, root, logger, { passivePorts, maxConnections: Number.MAX_SAFE_INTEGER, maxConnectionsPerIp: Number.MAX_SAFE_INTEGER });
  runClusterWorker(server, () => logger.info('SIGHUP: nothing to reload without a configuration file'));
}

function flagOptions(flags: ServeFlags): Omit<FtpServerOptions, 'authenticator'> {
  return {
    host: flags.host,
    port: flags.port,
    passivePorts: flags.passivePorts,
    masqueradeAddress: flags.masquerade,
    maxConnections: flags.maxConnections,
    maxConnectionsPerIp: flags.maxConnectionsPerIp,
  };
}

function failToListen(flags: ServeFlags, err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') fail(`port ${flags.port} on ${flags.host} is already in use. Stop the other server or choose another with --port.`, 1);
  if (code === 'EACCES') fail(`not allowed to listen on port ${flags.port}. Ports below 1024 need root; use --port 2121.`, 1);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    fail(`cannot listen on ${flags.host}: no such address on this machine. Use 0.0.0.0 (all IPv4), :: (IPv6) or one of its addresses.`, 1);
  }
  fail(`cannot start on ${flags.host}:${flags.port}: ${(err as Error).message}`, 1);
}

function printBanner(flags: ServeFlags, root: string, port: number): void {
  const anonymous = flags.user.length === 0;
  const access = flags.write ? 'read-write' : 'read-only';
  const who = anonymous ? 'anonymous users (any password)' : `user${flags.user.length > 1 ? 's' : ''} ${flags.user.map((u) => u.username).join(', ')}`;
  const workers = flags.workers > 1 ? ` with ${flags.workers} worker processes` : '';
  const lines = [`Ferry ${pkg.version} is serving ${servedLocation(flags, root)} (${access}) to ${who}${workers}.`];
  for (const address of reachableAddresses(flags.host)) {
    const shown = address.includes(':') ? `[${address}]` : address;
    lines.push(`  ftp://${anonymous ? '' : `${flags.user[0]!.username}@`}${shown}:${port}/`);
  }
  const example = reachableAddresses(flags.host)[0]!;
  const exampleHost = example.includes(':') ? `[${example}]` : example;
  const user = flags.user[0]?.username;
  lines.push(`Try: lftp -p ${port} ${user ? `-u ${user} ` : ''}${example}   or   curl ${user ? `-u ${user}:PASSWORD ` : ''}ftp://${exampleHost}:${port}/`);
  if (anonymous && flags.write) lines.push('Warning: anyone who can reach this port can write and delete files (--write with anonymous access).');
  lines.push('Press Ctrl-C to stop.');
  process.stdout.write(lines.join('\n') + '\n');
}

function onSignals(graceMs: number, stop: () => Promise<void>, reload: () => void): void {
  let stopping = false;
  const onStop = (signal: string) => {
    if (stopping) {
      process.stdout.write('Stopping now.\n');
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`\n${signal}: stopping; running transfers get ${graceMs / 1000} s to finish (Ctrl-C again to stop at once).\n`);
    void stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGHUP', reload);
}

function fail(message: string, exitCode = 2): never {
  process.stderr.write(`ferry: ${message}\n`);
  process.exit(exitCode);
}

function serveOptions(command: Command): Command {
  return command
    .option('--root <dir>', 'folder to serve', process.cwd())
    .option('--host <addr>', 'address to listen on (:: for IPv6)', '0.0.0.0')
    .option('--port <n>', 'control port', parsePort, 2121)
    .option('--user <name:password>', 'allow this user instead of anonymous (repeatable)', collectUser, [])
    .option('--write', 'grant write permissions (upload, delete, rename, mkdir)', false)
    .option('--passive-ports <a-b>', 'passive data port range, e.g. 50000-50100', parseRange)
    .option('--masquerade <addr>', 'IPv4 address to announce in PASV replies (behind NAT)', parseIpv4)
    .option('--s3 <s3://bucket/prefix>', 'serve an S3 bucket (prefix may contain {username}) instead of --root; credentials from AWS_* variables', parseS3Url)
    .option('--s3-endpoint <url>', 'S3-compatible endpoint (MinIO, R2, Wasabi...); implies --s3-path-style', parseUrl)
    .option('--s3-region <region>', 'S3 region (default: AWS_REGION, else us-east-1)')
    .option('--s3-path-style', 'path-style bucket URLs (endpoint/bucket/key)')
    .option('--no-s3-path-style', 'virtual-hosted bucket URLs (bucket.endpoint/key), even with --s3-endpoint')
    .option('--no-fsync', 'confirm uploads without waiting for the disk (faster; a power cut may lose the last uploads)')
    .option('--workers <n>', 'processes serving sessions: a number, or auto for one per CPU', parseWorkers, 1)
    .option('--max-connections <n>', 'concurrent control connections in total', parseCount, 512)
    .option('--max-connections-per-ip <n>', 'concurrent control connections from one address (IPv6: one /64)', parseCount, 32)
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(['debug', 'info', 'warn', 'error', 'silent']).default('info'))
    .action((flags: ServeFlags) => serve(flags));
}

const program = new Command('ferry')
  .description('Ferry: a fast, safe FTP server. With no command, serves the current folder read-only to anonymous users.')
  .version(pkg.version)
  .showHelpAfterError()
  // `ferry serve --root X` must give --root to `serve`, not to the top level.
  .enablePositionalOptions()
  // Usage errors exit 2, runtime failures 1, help and version 0 (the usual CLI convention).
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
serveOptions(program);
serveOptions(program.command('serve').description('run the FTP server (the default command)'));

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`ferry: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
