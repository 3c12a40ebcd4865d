/**
 * `ferry serve`: load the configuration (file, FERRY_* variables, flags),
 * build the server, listen, drop privileges, and handle signals: SIGINT and
 * SIGTERM stop gracefully, SIGHUP reloads the configuration and the users
 * file without dropping sessions, SIGUSR1 reopens the log files (logrotate).
 * Log lines go to standard output (or logging.file); what is said to the
 * person who started it (the banner, "stopping") goes to standard error, so
 * that standard output stays one JSON line per log line.
 */
import cluster from 'node:cluster';
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import os from 'node:os';
import type { Command } from 'commander';
import type { pino } from 'pino';
import { VerificationCache } from '../auth/password.js';
import { ALL_PERMISSIONS, READ_PERMISSIONS } from '../auth/types.js';
import { buildServerOptions, serverOptions } from '../config/build.js';
import { CONFIG_ENV, loadConfig, nobodyCanLogIn, type ConfigOverride, type LoadedConfig } from '../config/load.js';
import { storageLocation, type Config } from '../config/schema.js';
import { ConfigError } from '../config/validate.js';
import { ClusterPrimary, clusterWorkerSettings, runClusterWorker } from '../server/cluster.js';
import { hostForWorkers, local, type Shared } from '../server/shared.js';
import { ControlSocket } from '../server/control-socket.js';
import { guard, type Defender } from '../limits/defender.js';
import { banHandlers, controlSocketPath } from './ban.js';
import { createSharedObjects, workerSharedState } from '../server/shared-state.js';
import { resolveOptions, type FtpServerOptions } from '../server/options.js';
import { dropPrivileges } from '../server/privileges.js';
import { sweepTempFiles } from '../storage/temp-files.js';
import { createServer, type FtpServer } from '../server/server.js';
import { cliUserHashes, shareWithWorkers, type CliUser, type HashedCliUser } from './cli-users.js';
import { fail, failWithConfig } from './fail.js';
import { s3Location, s3StorageFromFlags, type S3Flags } from './s3-flags.js';
import { VERSION } from './version.js';
import { DaemonHooks } from './hooks.js';
import { EVENT_NAMES, PRIMARY_EVENTS } from '../observability/hook-event.js';
import { publishEvent } from '../observability/channels.js';
import { createLogOutput, type LogOutput } from '../observability/log-output.js';
import { TransferLog } from '../observability/transfer-log.js';
import type { MetricsListener } from '../server/metrics-listener.js';
import { startMetrics } from './serve-metrics.js';
import type { BanInfo, UnbanInfo } from '../observability/events.js';

export interface ServeFlags extends S3Flags {
  config?: string;
  root: string;
  fsync: boolean;
  workers: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  host: string;
  port: number;
  user: CliUser[];
  userPasswordFile?: string;
  write: boolean;
  passivePorts?: string;
  masquerade?: string;
  logLevel: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsImplicitPort?: number;
  tlsPolicy?: string;
}

/** Flags that set a config key when given on the command line (not when left at their default). */
const FLAG_KEYS: ReadonlyArray<[keyof ServeFlags, string, string[]]> = [
  ['host', '--host', ['host']],
  ['port', '--port', ['port']],
  ['passivePorts', '--passive-ports', ['passivePorts']],
  ['masquerade', '--masquerade', ['masqueradeAddress']],
  ['workers', '--workers', ['workers']],
  ['maxConnections', '--max-connections', ['limits', 'maxConnections']],
  ['maxConnectionsPerIp', '--max-connections-per-ip', ['limits', 'maxConnectionsPerIp']],
  ['logLevel', '--log-level', ['logging', 'level']],
  ['root', '--root', ['storage', 'root']],
  ['fsync', '--no-fsync', ['storage', 'fsync']],
  ['tlsCert', '--tls-cert', ['tls', 'cert']],
  ['tlsKey', '--tls-key', ['tls', 'key']],
  ['tlsCa', '--tls-ca', ['tls', 'ca']],
  ['tlsImplicitPort', '--tls-implicit-port', ['tls', 'implicitPort']],
  ['tlsPolicy', '--tls-policy', ['tls', 'policy']],
];

/** Everything needed to (re)load: the same inputs give the same Config. */
interface Plan {
  file: string | null;
  preset: Record<string, unknown> | undefined;
  overrides: ConfigOverride[];
  cliUsers: HashedCliUser[];
  cliPermissions: string;
}

export async function serve(flags: ServeFlags, command: Command): Promise<void> {
  const file = flags.config ?? process.env[CONFIG_ENV] ?? null;
  const overrides = FLAG_KEYS.filter(([key]) => command.getOptionValueSource(key) === 'cli').map(
    ([key, source, path]): ConfigOverride => ({ path, value: flags[key], source }),
  );
  const plan: Plan = {
    file,
    // Without a file, `ferry` shares a folder: anonymous read-only (or --write), unless --user names who may log in.
    preset: file ? undefined : { storage: { type: 'local', root: flags.root }, anonymous: { enabled: flags.user.length === 0, permissions: flags.write ? 'full' : 'read' } },
    overrides,
    // Only scrypt hashes are kept, as a deployment with a users file would.
    cliUsers: await cliUserHashes(flags.user, flags.userPasswordFile),
    cliPermissions: flags.write ? ALL_PERMISSIONS : READ_PERMISSIONS,
  };
  // Without a file every value came from the command line or environment: a bad one is a usage error.
  const usageOrConfig = file ? 1 : 2;
  let loaded: LoadedConfig;
  try {
    loaded = await load(plan);
  } catch (err) {
    failWithConfig(err, usageOrConfig);
  }
  const { config } = loaded;
  const workers = config.workers === 'auto' ? os.availableParallelism() : config.workers;
  // Opened before privileges are dropped (a root-owned /var/log), reopened by name after (SIGUSR1).
  let output: LogOutput;
  let transferLog: TransferLog | null = null;
  try {
    const { level, format, file: logFile } = config.logging;
    output = createLogOutput({ level, format, file: logFile, base: cluster.isWorker ? { worker: clusterWorkerSettings().index } : undefined });
    // Sessions run in the workers: the primary of a cluster has no transfers to log.
    if (config.logging.transferLog && (cluster.isWorker || workers === 1)) transferLog = new TransferLog(config.logging.transferLog);
  } catch (err) {
    fail((err as Error).message, 1);
  }
  const { logger } = output;
  const reopenLogs = () => {
    output.reopen();
    transferLog?.reopen();
  };
  // Also keeps Node from opening its inspector on SIGUSR1, which it does when nothing listens for it.
  process.on('SIGUSR1', reopenLogs);
  const storageAt = s3StorageFromFlags(flags, logger);
  for (const warning of loaded.warnings) logger.warn(warning);
  let cache = new VerificationCache({ ttlMs: config.users.cacheTtlMs });
  /** Options for `next`; the login cache carries over unless its lifetime changed. */
  const build = async (next: Config): Promise<FtpServerOptions> => {
    if (next.users.cacheTtlMs !== cache.ttlMs) cache = new VerificationCache({ ttlMs: next.users.cacheTtlMs });
    return buildServerOptions(next, { logger, cache, cliUsers: plan.cliUsers, cliPermissions: plan.cliPermissions, storageAt });
  };
  // The config's hooks: (secret files read now; an unreadable one stops the start).
  let hooks: DaemonHooks;
  try {
    hooks = await DaemonHooks.start(config, logger);
  } catch (err) {
    failWithConfig(err, usageOrConfig);
  }
  // Temp files of uploads a stopped process left behind (a SIGKILL, a crash, a
  // power cut) are removed in the background: the root is known here; homes
  // elsewhere are swept when an upload first reaches them (temp-files.ts).
  const sweepRoot = config.storage.type === 'local' && !s3Location(flags) ? config.storage.root : null;
  // One sweep at a time: workers dying in a loop must not stack up walks of
  // the whole tree. A request during a sweep runs one more after it.
  let sweeping: Promise<unknown> | null = null;
  let again = false;
  const sweep = (): void => {
    if (!sweepRoot) return;
    if (sweeping) {
      again = true;
      return;
    }
    sweeping = sweepTempFiles(sweepRoot, { recursive: true, logger })
      .catch(() => undefined)
      .finally(() => {
        sweeping = null;
        if (again) {
          again = false;
          sweep();
        }
      });
  };
  /** Settings of the process itself, which only a restart changes (the server names its own). */
  const restartOnly = (next: Config) => [
    ...(['workers', 'runAs', 'metrics'] as const).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(config[key])),
    ...(['format', 'file', 'transferLog'] as const).filter((key) => next.logging[key] !== config.logging[key]).map((key) => `logging.${key}`),
    // The beforeUpload hook is registered before the server serves: on or off only at a restart.
    ...((next.hooks.beforeUpload.url === null) !== (config.hooks.beforeUpload.url === null) ? ['hooks.beforeUpload.url'] : []),
  ];

  if (cluster.isWorker) {
    const { passivePorts, index } = clusterWorkerSettings();
    // The primary admits connections for the whole cluster and keeps the
    // state every worker must agree on (shared.ts); workers call it. Session
    // ids carry the worker's number: one log file, one id per session.
    const clusterOverrides = { passivePorts, shared: workerSharedState(), sessionIdPrefix: `${index}-` };
    const server = await startServer(await build(config), clusterOverrides, usageOrConfig);
    // The primary runs the hooks of bans; each worker those of its own sessions' events.
    hooks.attach(server, new Set(EVENT_NAMES.filter((name) => !PRIMARY_EVENTS.has(name))));
    hooks.register(server);
    await startMetrics(config.metrics, { process: 'worker' }, logger);
    dropOrExit(config);
    runClusterWorker(server, {
      onReload: () =>
        void reload(plan, logger, async (next) => {
          const applyHooks = await hooks.prepareReload(next);
          const changed = server.reconfigure({ ...(await build(next)), ...clusterOverrides });
          applyHooks();
          return [...changed, ...restartOnly(next)];
        }),
      onReopenLogs: reopenLogs,
      beforeExit: () => hooks.close(),
    });
    return;
  }
  if (workers > 1) {
    let primary: ClusterPrimary;
    let shutdownGraceMs: number;
    let defender: Defender;
    try {
      // Validate every setting once, here, before any worker starts.
      const options = resolveOptions({ ...serverOptions(config), authenticator: { authenticate: async () => null } });
      primary = new ClusterPrimary({ ...options, workers, logger, onWorkerExit: sweep });
      // Bans happen here, in the primary: its logs, diagnostics channel (metrics) and hooks see them.
      const bans = new EventEmitter();
      const defenderHooks = {
        logger,
        onBan: (info: BanInfo) => {
          publishEvent('ban', info);
          bans.emit('ban', info);
        },
        onUnban: (info: UnbanInfo) => {
          publishEvent('unban', info);
          bans.emit('unban', info);
        },
      };
      hooks.attach(bans, PRIMARY_EVENTS);
      const objects = createSharedObjects({ defender: options.defender, defenderHooks });
      for (const [name, object] of Object.entries(objects)) hostForWorkers(name, object);
      // The primary admits every connection, so the defender's bans are checked there; workers report offences to it.
      defender = objects.defender as Defender;
      guard(primary.gate, defender);
      shutdownGraceMs = options.shutdownGraceMs;
    } catch (err) {
      fail((err as Error).message, 1);
    }
    shareWithWorkers(plan.cliUsers);
    let address: net.AddressInfo;
    try {
      address = await primary.start();
    } catch (err) {
      await primary.stop(0);
      failToListen(config, err);
    }
    const metrics = await startMetrics(config.metrics, { process: 'primary', labelOf: (worker) => String(primary.indexOf(worker) ?? `pid ${worker.process.pid}`) }, logger);
    dropOrExit(config);
    const control = await openControlSocket(config, local(defender), logger);
    sweep();
    printBanner(flags, loaded, address.port, workers, primary.implicitAddress()?.port);
    process.on('SIGUSR1', () => primary.reopenLogs());
    // The primary reloads too: the log level, the connection limits it enforces for the cluster, the defender.
    onSignals(shutdownGraceMs, () => stopAll(control, metrics, () => primary.stop(), hooks), () =>
      void reload(plan, logger, async (next) => {
        const { maxConnections, maxConnectionsPerIp, shutdownGraceMs: graceMs } = next.limits;
        const applyHooks = await hooks.prepareReload(next);
        primary.reload({ maxConnections, maxConnectionsPerIp, shutdownGraceMs: graceMs, proxyProtocol: next.proxyProtocol });
        defender.configure(next.defender);
        applyHooks();
        return restartOnly(next);
      }),
    );
    return;
  }
  const server = await startServer(await build(config), {}, usageOrConfig);
  hooks.attach(server);
  hooks.register(server);
  // Counting from before the first session.
  const metrics = await startMetrics(config.metrics, { process: 'single' }, logger);
  let address: net.AddressInfo;
  try {
    address = await server.listen();
  } catch (err) {
    failToListen(config, err);
  }
  dropOrExit(config);
  const control = await openControlSocket(config, server.shared.defender, logger);
  sweep();
  printBanner(flags, loaded, address.port, 1, server.implicitAddress()?.port);
  onSignals(
    server.options.shutdownGraceMs,
    () => stopAll(control, metrics, () => server.close(), hooks),
    () =>
      void reload(plan, logger, async (next) => {
        const applyHooks = await hooks.prepareReload(next);
        const changed = server.reconfigure(await build(next));
        applyHooks();
        return [...changed, ...restartOnly(next)];
      }),
  );
}

/**
 * The control socket `ferry ban` talks to, opened after dropping privileges
 * so that it belongs to the user the server runs as. Not fatal: a server
 * that cannot open it serves anyway, and says `ferry ban` cannot reach it.
 */
async function openControlSocket(config: Config, defender: Shared<Defender>, logger: pino.Logger): Promise<ControlSocket | null> {
  const socketPath = controlSocketPath(config);
  if (!socketPath) {
    logger.debug('no control socket (port 0 and no controlSocket set): ferry ban cannot reach this server');
    return null;
  }
  try {
    return await ControlSocket.listen(socketPath, banHandlers(defender), logger);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'no control socket: ferry ban cannot reach this server');
    return null;
  }
}

/** Stop: the control socket first (its file removed) and the metrics listener, then the server, then a moment for the hooks of its last events. */
async function stopAll(control: ControlSocket | null, metrics: MetricsListener | null, stop: () => Promise<void>, hooks: DaemonHooks): Promise<void> {
  await Promise.all([control?.close(), metrics?.close()]);
  await stop();
  await hooks.close();
}

async function startServer(options: FtpServerOptions, overrides: Partial<FtpServerOptions>, exitCode: number): Promise<FtpServer> {
  let server: FtpServer;
  try {
    server = createServer({ ...options, ...overrides });
  } catch (err) {
    fail((err as Error).message, exitCode);
  }
  server.on('error', (err) => options.logger?.error({ err }, 'server error'));
  return server;
}

function load(plan: Plan): Promise<LoadedConfig> {
  return loadConfig({ file: plan.file, preset: plan.preset, env: process.env, overrides: plan.overrides }).then(async (loaded) => {
    const nobody = plan.cliUsers.length === 0 ? await nobodyCanLogIn(loaded.config) : null;
    if (nobody) loaded.warnings.push(nobody);
    return loaded;
  });
}

/**
 * SIGHUP: read the file and the users file again and `apply` the result
 * (which returns the settings that need a restart). New logins see it;
 * sessions in progress continue. A configuration that does not load is
 * logged and the one in force stays.
 */
async function reload(plan: Plan, logger: pino.Logger, apply: (config: Config) => Promise<string[]>): Promise<void> {
  try {
    const { config, warnings } = await load(plan);
    const needRestart = await apply(config);
    logger.level = config.logging.level;
    for (const warning of warnings) logger.warn(warning);
    if (needRestart.length > 0) logger.warn({ settings: needRestart }, 'these settings change only on restart');
    logger.info({ path: plan.file }, 'configuration reloaded');
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
    logger.error({ problems }, 'reload failed; the previous configuration stays in force');
  }
}

function dropOrExit(config: Config): void {
  try {
    dropPrivileges(config.runAs);
  } catch (err) {
    fail((err as Error).message, 1);
  }
}

function failToListen(config: Config, err: unknown): never {
  const { host } = config;
  // The implicit FTPS listener may be the one that failed.
  const port = (err as { port?: number }).port ?? config.port;
  const flag = port === config.tls.implicitPort && port !== config.port ? '--tls-implicit-port (tls.implicitPort)' : '--port';
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') fail(`port ${port} on ${host} is already in use. Stop the other server or choose another with ${flag}.`, 1);
  if (code === 'EACCES') fail(`not allowed to listen on port ${port}. Ports below 1024 need root (see runAs to drop it after binding); or use --port 2121.`, 1);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    fail(`cannot listen on ${host}: no such address on this machine. Use 0.0.0.0 (all IPv4), :: (IPv6) or one of its addresses.`, 1);
  }
  fail(`cannot start on ${host}:${port}: ${(err as Error).message}`, 1);
}

/**
 * Addresses a client on this machine or the LAN can use to reach `host`.
 * `::` listens on IPv4 too (Node binds it dual-stack), so it lists both
 * families. Link-local IPv6 addresses (fe80::/10) are left out: a URL can
 * reach them only with the interface's zone, which clients spell differently.
 */
function reachableAddresses(host: string): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [host];
  const ipv6 = host === '::';
  const found = ipv6 ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
  for (const family of ipv6 ? ['IPv4', 'IPv6'] : ['IPv4']) {
    for (const list of Object.values(os.networkInterfaces())) {
      for (const item of list ?? []) if (item.family === family && !item.internal && !/^fe[89ab]/i.test(item.address)) found.push(item.address);
    }
  }
  return found;
}

/** An address as a URL's host: IPv6 in brackets. */
const urlHost = (address: string) => (address.includes(':') ? `[${address}]` : address);

function printBanner(flags: ServeFlags, { config, file }: LoadedConfig, port: number, workers: number, implicitPort?: number): void {
  const users = flags.user.map((u) => u.username);
  const who: string[] = [];
  if (users.length > 0) who.push(`user${users.length > 1 ? 's' : ''} ${users.join(', ')}`);
  if (config.users.file) who.push(`the users in ${config.users.file}`);
  if (config.authHook.url) who.push('users the auth hook accepts');
  if (config.anonymous.enabled) who.push(file ? `anonymous users (${config.anonymous.permissions})` : 'anonymous users (any password)');
  const access = file ? '' : ` (${flags.write ? 'read-write' : 'read-only'})`;
  const from = file ? ` as configured in ${file}` : '';
  const withWorkers = workers > 1 ? ` with ${workers} worker processes` : '';
  const lines = [`Ferry ${VERSION} is serving ${s3Location(flags) ?? storageLocation(config.storage)}${access} to ${who.join(' and ') || 'nobody (no users configured)'}${withWorkers}${from}.`];
  const hosts = reachableAddresses(config.host);
  for (const address of hosts) lines.push(`  ftp://${users[0] ? `${users[0]}@` : ''}${urlHost(address)}:${port}/`);
  const example = hosts[0]!;
  // Without anonymous access a client must name a user: show where it goes.
  const user = users[0] ?? (config.anonymous.enabled ? undefined : 'USER');
  const url = `ftp://${urlHost(example)}:${port}/`;
  if (config.tls.cert) {
    const implicit = implicitPort ? `, implicit TLS on port ${implicitPort} (ftps://${urlHost(example)}:${implicitPort}/)` : '';
    lines.push(`FTPS: AUTH TLS on port ${port}${implicit}; TLS policy: ${config.tls.policy}.`);
    // The plain commands would be refused (policy) or fail on an untrusted certificate: show the TLS ones.
    lines.push(`Try: lftp -e 'set ftp:ssl-force true' -p ${port} ${user ? `-u ${user} ` : ''}${example}   or   curl --ssl-reqd ${user ? `-u ${user}:PASSWORD ` : ''}${url}`);
    lines.push(`  (a self-signed certificate: add lftp 'set ssl:ca-file ${config.tls.cert}' or curl --cacert ${config.tls.cert})`);
  } else {
    lines.push(`Try: lftp -p ${port} ${user ? `-u ${user} ` : ''}${example}   or   curl ${user ? `-u ${user}:PASSWORD ` : ''}${url}`);
  }
  if (!file && users.length === 0 && flags.write) lines.push('Warning: anyone who can reach this port can write and delete files (--write with anonymous access).');
  const { file: logFile, transferLog } = config.logging;
  if (logFile || transferLog) lines.push(`Logs: ${[logFile, transferLog && `transfers (xferlog) in ${transferLog}`].filter(Boolean).join('; ')} (kill -USR1 ${process.pid} reopens them).`);
  lines.push('Press Ctrl-C to stop.');
  process.stderr.write(lines.join('\n') + '\n');
}

function onSignals(graceMs: number, stop: () => Promise<void>, reload: () => void): void {
  let stopping = false;
  const onStop = (signal: string) => {
    if (stopping) {
      process.stderr.write('Stopping now.\n');
      // Uploads still running are lost: their temp files go in an 'exit' listener (temp-files.ts).
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`\n${signal}: stopping; running transfers get ${graceMs / 1000} s to finish (Ctrl-C again to stop at once).\n`);
    void stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGHUP', reload);
}
