#!/usr/bin/env node
/**
 * The `ferry` command. With no arguments it serves the current directory
 * read-only to anonymous users on port 2121, like `python -m pyftpdlib`;
 * with --config it runs from one YAML file.
 */
import os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, nobodyCanLogIn, USER_PASSWORD_ENV } from '../config/load.js';
import { portRangeProblem, storageLocation } from '../config/schema.js';
import { readUsersFile } from '../config/users-file.js';
import { buildServerOptions } from '../config/build.js';
import { ANNOUNCE_HELP, parseAnnounce } from '../data/passive-address.js';
import { resolveOptions } from '../server/options.js';
import { TLS_POLICIES } from '../tls/options.js';
import { certCommand } from './cert.js';
import { fail, failWithConfig } from './fail.js';
import { parseEndpoint, parseS3Url } from './s3-flags.js';
import { serve, type ServeFlags } from './serve.js';
import { VERSION } from './version.js';
import { addBan, listBans, removeBan } from './ban.js';
import { addUser, changePassword, deleteUser, listUsers, printHash, setUser, showUser } from './users.js';
import { hookSettings } from './hooks.js';
import { checkLogFiles } from '../observability/log-output.js';


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
  if (colon === 0) throw new InvalidArgumentError('expected NAME or NAME:PASSWORD, e.g. --user alice');
  const username = colon < 0 ? value : value.slice(0, colon);
  const password = colon < 0 ? undefined : value.slice(colon + 1);
  if (password === '') throw new InvalidArgumentError(`the password for ${username} is empty; give one after the colon, or give NAME alone.`);
  if (previous.some((u) => u.username === username)) throw new InvalidArgumentError(`user ${username} is given twice.`);
  return [...previous, { username, password }];
}

function parseAnnounced(value: string): string {
  if (!parseAnnounce(value)) throw new InvalidArgumentError(`"${value}" is not ${ANNOUNCE_HELP}.`);
  return value;
}

function parseRange(value: string): string {
  const problem = portRangeProblem(value);
  if (problem) throw new InvalidArgumentError(`"${value}" is not ${problem}.`);
  return value;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function serveOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'run from this YAML configuration file (also FERRY_CONFIG); the flags below override it')
    .option('--root <dir>', 'folder to serve', process.cwd())
    .option('--host <addr>', 'address to listen on (:: for IPv6)', '0.0.0.0')
    .option('--port <n>', 'control port', parsePort, 2121)
    .option(
      '--user <name[:password]>',
      `allow this user instead of anonymous (repeatable). A password given here is visible to other local users (ps); with NAME alone it comes from --user-password-file, else ${USER_PASSWORD_ENV}, else standard input (one such --user)`,
      collectUser,
      [],
    )
    .option('--user-password-file <file>', "the password of the --user given without one: this file's one line")
    .option('--write', 'grant write permissions (upload, delete, rename, mkdir) to --user users, and without --config to anonymous', false)
    .option('--passive-ports <a-b>', 'passive data port range, e.g. 50000-50100', parseRange)
    .option('--masquerade <addr>', 'IPv4 address or host name to announce in PASV replies (behind NAT; rules per client network go in the config file)', parseAnnounced)
    .option('--s3 <s3://bucket/prefix>', 'serve an S3 bucket (prefix may contain {username}) instead of --root; credentials from AWS_* variables', parseS3Url)
    .option('--s3-endpoint <url>', 'S3-compatible endpoint (MinIO, R2, Wasabi...); implies --s3-path-style', parseEndpoint)
    .option('--s3-region <region>', 'S3 region (default: AWS_REGION, else us-east-1)')
    .option('--s3-path-style', 'path-style bucket URLs (endpoint/bucket/key)')
    .option('--no-s3-path-style', 'virtual-hosted bucket URLs (bucket.endpoint/key), even with --s3-endpoint')
    .option('--s3-socket-timeout <ms>', 'an S3 request silent this long fails with 451 (default 30000; raise it for stores that stay silent while completing large uploads)', parseCount)
    .option('--no-fsync', 'confirm uploads without waiting for the disk (faster; a power cut may lose the last uploads)')
    .option('--workers <n>', 'processes serving sessions: a number, or auto for one per CPU', parseWorkers, 1)
    .option('--max-connections <n>', 'concurrent control connections in total', parseCount, 512)
    .option('--max-connections-per-ip <n>', 'concurrent control connections from one address (IPv6: one /64)', parseCount, 32)
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(['debug', 'info', 'warn', 'error', 'silent']).default('info'))
    .option('--tls-cert <file>', 'PEM certificate chain: enables FTPS (AUTH TLS); SIGHUP reloads it')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA certificates to send with the chain')
    .option('--tls-implicit-port <n>', 'also serve implicit FTPS (TLS from the first byte) on this port, usually 990', parsePort)
    .addOption(new Option('--tls-policy <policy>', 'who must use TLS: optional, login (no password in the clear; anonymous exempt), data (and PROT P for transfers)').choices(TLS_POLICIES))
    .action((flags: ServeFlags, cmd: Command) => serve(flags, cmd));
}

/** The options every `ferry user` subcommand takes to find the users file. */
function usersFileOptions(command: Command): Command {
  return command
    .option('-f, --file <users-file>', 'the users file (YAML or JSON)')
    .option('-c, --config <file>', 'use users.file from this configuration (also FERRY_CONFIG)');
}

/** Options of `user add` and `user set`; `set` changes only what is given. */
function userFieldOptions(command: Command, adding: boolean): Command {
  const byDefault = (text: string) => (adding ? ` (default ${text})` : '');
  return command
    .option('--home <path>', `home directory inside the storage root; {username} is replaced${byDefault('/{username}')}`)
    .option('--permissions <spec>', `read, write, full, none, or letters from elradfmwMT${byDefault('read')}`)
    .option('--allow-from <cidr>', `allow logins only from this address or range (repeatable${adding ? '' : '; replaces the list'})`, collect)
    .addOption(
      new Option('--tls <policy>', `this user's TLS policy instead of the server's tls.policy: optional (e.g. a camera that cannot do TLS), login or data${byDefault("the server's")}`).choices(TLS_POLICIES),
    );
}

const passwordStdin = (command: Command) => command.option('--password-stdin', 'read the password (one line) from standard input instead of prompting');

const program = new Command('ferry')
  .description('Ferry: a fast, safe FTP server. With no command, serves the current folder read-only to anonymous users.')
  .version(VERSION)
  .showHelpAfterError('(ferry --help, or ferry COMMAND --help, lists the options)')
  // `ferry serve --root X` must give --root to `serve`, not to the top level.
  .enablePositionalOptions()
  // Usage errors exit 2, runtime failures 1, help and version 0 (the usual CLI convention).
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
serveOptions(program);
serveOptions(program.command('serve').description('run the FTP server (the default command)'));
certCommand(program, fail);

program
  .command('check-config')
  .description('validate a configuration file (with FERRY_* variables applied, as serve would) and its users file without starting; exit 0 when valid, 1 when not')
  .argument('<file>', 'the YAML configuration file')
  .action(async (file: string) => {
    try {
      const { config, warnings } = await loadConfig({ file, env: process.env });
      const nobody = await nobodyCanLogIn(config);
      if (nobody) warnings.push(nobody);
      const users = config.users.file ? Object.keys(await readUsersFile(config.users.file)).length : 0;
      // Build what serve would build (certificate and key loaded, ports compared, secret files read, log files
      // writable): what serve refuses, this refuses.
      resolveOptions(await buildServerOptions(config));
      await hookSettings(config.hooks);
      await checkLogFiles([
        ['logging.file', config.logging.file],
        ['logging.transferLog', config.logging.transferLog],
      ]);
      for (const warning of warnings) process.stderr.write(`ferry: warning: ${warning}\n`);
      const { tls } = config;
      const ftps = tls.cert ? `, FTPS (policy ${tls.policy}${tls.implicitPort !== null ? `, implicit port ${tls.implicitPort}` : ''})` : ', no FTPS';
      const { trustedSources } = config.proxyProtocol;
      const proxied = trustedSources.length > 0 ? `, PROXY protocol only, from ${trustedSources.join(' ')}` : '';
      process.stdout.write(`${file} is valid: ${config.host}:${config.port}${ftps}${proxied}, storage ${storageLocation(config.storage)}, ${users} user${users === 1 ? '' : 's'}${config.anonymous.enabled ? ', anonymous on' : ''}.\n`);
    } catch (err) {
      failWithConfig(err);
    }
  });

passwordStdin(program.command('hash-password').description('print a scrypt hash of a password, for passwordHash in a users file')).action(printHash);

const user = program.command('user').description('manage the users file: add, set, passwd, del, list, show');
passwordStdin(userFieldOptions(usersFileOptions(user.command('add').description('add a user (asks for the password)').argument('<name>')), true)).action(addUser);
userFieldOptions(usersFileOptions(user.command('set').description("change a user's home, permissions, allowed addresses, TLS policy, or disable it").argument('<name>')), false)
  .addOption(new Option('--disable', 'refuse logins of this user (kept in the file)').conflicts('enable'))
  .option('--enable', 'allow logins again')
  .action((name: string, flags: Parameters<typeof setUser>[1] & { disable?: boolean; enable?: boolean }) =>
    setUser(name, { ...flags, disabled: flags.disable ? true : flags.enable ? false : undefined }),
  );
passwordStdin(usersFileOptions(user.command('passwd').description("change a user's password").argument('<name>'))).action(changePassword);
usersFileOptions(user.command('del').description('delete a user').argument('<name>')).action(deleteUser);
usersFileOptions(user.command('list').description('list users: name, home, permissions')).action(listUsers);
usersFileOptions(user.command('show').description("show a user's settings (never the hash)").argument('<name>')).action(showUser);

/** The options every `ferry ban` subcommand takes to find the running server's control socket. */
function controlOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', "the server's configuration (also FERRY_CONFIG): its controlSocket, or the default for its port")
    .option('--socket <path>', "the server's control socket, instead of finding it from --config");
}

const ban = program.command('ban').description("the defender's bans on a running server (cluster included): list, add, remove");
controlOptions(ban.command('list').description('list the bans in force: address, until when, why'))
  .option('--json', 'print them as JSON')
  .action(listBans);
controlOptions(ban.command('add').description('ban an address (an IPv6 address bans its /64): refused with 421 before the greeting').argument('<address>'))
  .option('--duration <time>', 'how long: 90s, 30m, 12h, 7d (default: until removed or the server restarts)')
  .option('--reason <text>', 'why, shown by ban list and in the log')
  .action(addBan);
controlOptions(ban.command('remove').description("lift an address's ban and reset its score").argument('<address>')).action(removeBan);

// The root runs `serve` when given no command, so commander adds no `help`
// command of its own (a root with an action treats `help user` as arguments
// to serve: "too many arguments"). This one walks any depth: `ferry help user add`.
program
  .command('help')
  .description('show the help of a command, e.g. ferry help user add')
  .argument('[command...]', 'the command (and subcommand)')
  .action((names: string[]) => {
    let command: Command = program;
    for (const [i, name] of names.entries()) {
      const next = command.commands.find((c) => c.name() === name || c.aliases().includes(name));
      if (!next) fail(`no command "${names.slice(0, i + 1).join(' ')}"; ferry --help lists them.`);
      command = next;
    }
    command.help();
  });

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`ferry: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
