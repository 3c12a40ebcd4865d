/**
 * Peer FTP servers for Ferry's benchmark: vsftpd, pure-ftpd, pyftpdlib and ftp-srv,
 * each started on 127.0.0.1 with the same user, password and root so a benchmark can
 * run them beside Ferry in one run. Install them first with `bash bench/peers/install.sh`.
 *
 *   import { peers } from '../bench/peers/peers.js'; // tsx maps .js to .ts
 *   const p = await peers.vsftpd({ root, port: 2121, passivePorts: [30000, 30999],
 *     user: 'ferrybench', password: 'benchpass', workdir });
 *   ...; p.pids(); await p.stop();
 *
 * vsftpd and pure-ftpd run sessions as the system user `o.user` (created by install.sh),
 * so starting them chowns o.root (recursively) to that user. pyftpdlib and ftp-srv run
 * as the calling user. All four are chrooted / virtually rooted at o.root.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { scrypt, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, existsSync, statSync, chmodSync } from 'node:fs';
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PeerOptions {
  root: string;
  port: number;
  passivePorts: [number, number];
  user: string;
  password: string;
  workdir: string;
}

export interface RunningPeer {
  name: string;
  /** All live processes of this server (listener and per-session children). */
  pids(): number[];
  stop(): Promise<void>;
}

export type PeerName = 'vsftpd' | 'pure-ftpd' | 'pyftpdlib' | 'ftp-srv';

/** Client limit given to every peer (total and per IP). */
export const MAX_CLIENTS = 2000;
/** Below this many clients a peer's limit would bite the benchmark (pure-ftpd: half its passive ports). */
export const MIN_CLIENTS = 1000;
/** scrypt cost used for the hashed passwords of pyftpdlib and ftp-srv (Node's defaults). */
export const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;
/** Host every peer binds to and advertises for passive data connections. */
export const HOST = '127.0.0.1';

const START_DEADLINE_MS = 10_000;
const STOP_GRACE_MS = 3_000;

const PEERS_DIR = dirname(fileURLToPath(import.meta.url));
const BENCH_DIR = dirname(PEERS_DIR);

interface Manifest {
  vsftpd: { bin: string; version: string; pamService: string };
  'pure-ftpd': { bin: string; purePw: string; version: string };
  pyftpdlib: { pythonpath: string; version: string; deb: string; python: string };
  'ftp-srv': { version: string };
  ldLibraryPath: string;
  user: string;
  home: string;
}

let manifestCache: Manifest | undefined;
function manifest(): Manifest {
  if (manifestCache) return manifestCache;
  const path = join(BENCH_DIR, '.peers', 'manifest.json');
  if (!existsSync(path)) {
    throw new Error(`peer servers are not installed (${path} missing): run \`bash bench/peers/install.sh\``);
  }
  manifestCache = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  return manifestCache;
}

/** Installed version of each peer, as reported by install.sh. */
export function peerVersions(): Record<PeerName, string> {
  const m = manifest();
  return {
    vsftpd: m.vsftpd.version,
    'pure-ftpd': m['pure-ftpd'].version,
    pyftpdlib: `${m.pyftpdlib.version} (python ${m.pyftpdlib.python})`,
    'ftp-srv': m['ftp-srv'].version,
  };
}

// ---------------------------------------------------------------- helpers

function systemUser(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`system user ${name} does not exist: run \`bash bench/peers/install.sh\` (it creates ferrybench)`);
}

function run(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(cmd, args, { env: env ?? process.env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message} ${stderr}`.trim()));
      else resolvePromise(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Makes o.root exist, owned by the server's system user, and reachable (o+x on its ancestors). */
async function prepareRootFor(root: string, uid: number, gid: number): Promise<void> {
  await mkdir(root, { recursive: true });
  await run('chown', ['-R', `${uid}:${gid}`, root]);
  for (let dir = dirname(resolve(root)); dir !== '/'; dir = dirname(dir)) {
    const st = statSync(dir);
    if ((st.mode & 0o001) === 0) chmodSync(dir, st.mode | 0o001);
  }
}

async function scryptHash(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await new Promise<Buffer>((ok, fail) =>
    scrypt(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, (err, k) => (err ? fail(err) : ok(k))),
  );
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** A crypt(3) yescrypt hash at the system default cost ($y$j9T$), made by perl's crypt (libxcrypt). */
async function yescrypt(password: string): Promise<string> {
  const alphabet = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const bytes = randomBytes(22);
  // 16 salt bytes encode to 22 chars; the last one carries 2 bits, so it is one of "./01".
  const salt = [...bytes].map((b, i) => alphabet[i === 21 ? b % 4 : b % 64]).join('');
  const out = await run('perl', ['-e', '$p = <STDIN>; chomp $p; print crypt($p, $ARGV[0])', `$y$j9T$${salt}$`], `${password}\n`);
  if (!out.startsWith('$y$')) throw new Error(`yescrypt hashing failed (crypt returned ${JSON.stringify(out)})`);
  return out;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
}

function listProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ..." — comm may hold spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z') continue; // zombies use no CPU or memory
    out.push({ pid: Number(entry), ppid: Number(rest[1]), pgrp: Number(rest[2]) });
  }
  return out;
}

/** The leader plus every process descending from it or sharing its process group. */
function processTree(leader: number): number[] {
  const procs = listProcs();
  const found = new Set<number>();
  if (procs.some((p) => p.pid === leader)) found.add(leader);
  for (const p of procs) if (p.pgrp === leader) found.add(p.pid);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return [...found].sort((a, b) => a - b);
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A benchmark that dies must not leave servers behind (they run in their own process groups).
  const killAll = (): void => {
    for (const child of running) {
      if (child.pid === undefined) continue;
      for (const pid of processTree(child.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig); // default action
    });
  }
}

/** Connects until the server answers a 220 greeting, or the deadline passes / the child dies. */
async function waitForGreeting(name: string, port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + START_DEADLINE_MS;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before greeting on ${HOST}:${port}: ${output()}`);
    }
    const result = await new Promise<string | null>((done) => {
      const sock = connect({ host: HOST, port });
      let buf = '';
      const timer = setTimeout(() => {
        sock.destroy();
        done('timed out waiting for greeting');
      }, Math.max(100, Math.min(2_000, deadline - Date.now())));
      sock.setEncoding('latin1');
      sock.on('data', (chunk: string) => {
        buf += chunk;
        if (!buf.includes('\n')) return;
        clearTimeout(timer);
        sock.end('QUIT\r\n');
        sock.destroy();
        done(buf.startsWith('220') ? null : `unexpected greeting ${JSON.stringify(buf.slice(0, 120))}`);
      });
      sock.on('error', (err) => {
        clearTimeout(timer);
        done(err.message);
      });
      sock.on('close', () => {
        clearTimeout(timer);
        done(buf.startsWith('220') ? null : (buf ? `unexpected greeting ${JSON.stringify(buf.slice(0, 120))}` : 'closed without greeting'));
      });
    });
    if (result === null) return;
    lastError = result;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} did not greet on ${HOST}:${port} within ${START_DEADLINE_MS} ms (${lastError}): ${output()}`);
}

/** Fails fast (and avoids greeting a stranger) when something already listens on the port. */
function assertPortFree(name: string, port: number): Promise<void> {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      fail(new Error(`${name}: cannot use ${HOST}:${port}: ${err.code === 'EADDRINUSE' ? 'port already in use' : err.message}`)),
    );
    probe.listen({ host: HOST, port, exclusive: true }, () => probe.close(() => ok()));
  });
}

/** Spawns a server in its own process group, waits for its 220, and wraps it as a RunningPeer. */
async function startProcess(
  name: PeerName,
  o: PeerOptions,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunningPeer> {
  installExitHook();
  await assertPortFree(name, o.port);
  const child = spawn(cmd, args, { cwd: o.workdir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => running.delete(child));
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  const leader = child.pid;

  const pids = (): number[] => (leader === undefined ? [] : processTree(leader));
  const signalAll = (sig: NodeJS.Signals): void => {
    if (leader === undefined) return;
    const targets = new Set(pids());
    try {
      process.kill(-leader, sig);
    } catch {
      /* group gone */
    }
    for (const pid of targets) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
  };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      signalAll('SIGTERM');
      const graceEnd = Date.now() + STOP_GRACE_MS;
      while (Date.now() < graceEnd && ((child.exitCode === null && child.signalCode === null) || pids().length > 0)) {
        await new Promise((r) => setTimeout(r, 25));
      }
      if (pids().length > 0) signalAll('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, STOP_GRACE_MS))]);
      running.delete(child);
    })();
    return stopping;
  };

  try {
    await Promise.race([waitForGreeting(name, o.port, child, () => tail.trim() || '(no output)'), spawnError]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name, pids, stop };
}

function checkOptions(o: PeerOptions): void {
  const [lo, hi] = o.passivePorts;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo > 1023 && lo <= hi && hi < 65536)) {
    throw new Error(`bad passive port range ${lo}-${hi}`);
  }
  if (!(Number.isInteger(o.port) && o.port > 0 && o.port < 65536)) throw new Error(`bad port ${o.port}`);
}

// ---------------------------------------------------------------- the peers

async function startVsftpd(o: PeerOptions): Promise<RunningPeer> {
  checkOptions(o);
  const m = manifest();
  const { uid, gid } = systemUser(o.user);
  await mkdir(o.workdir, { recursive: true });
  await prepareRootFor(o.root, uid, gid);
  const emptyDir = join(o.workdir, 'vsftpd-empty'); // secure_chroot_dir: empty, root-owned, not writable
  await mkdir(emptyDir, { recursive: true, mode: 0o755 });
  const conf = join(o.workdir, 'vsftpd.conf');
  // vsftpd checks passwords through PAM (service written by install.sh: pam_unix on /etc/shadow),
  // so o.password must be the system password of o.user (install.sh sets ferrybench/benchpass).
  await writeFile(
    conf,
    [
      'listen=YES',
      'listen_ipv6=NO',
      `listen_address=${HOST}`,
      `listen_port=${o.port}`,
      'background=NO',
      'anonymous_enable=NO',
      'local_enable=YES',
      'write_enable=YES',
      'local_umask=022',
      `local_root=${resolve(o.root)}`,
      'chroot_local_user=YES',
      'allow_writeable_chroot=YES',
      `secure_chroot_dir=${emptyDir}`,
      `pam_service_name=${m.vsftpd.pamService}`,
      'pasv_enable=YES',
      `pasv_min_port=${o.passivePorts[0]}`,
      `pasv_max_port=${o.passivePorts[1]}`,
      `pasv_address=${HOST}`,
      `max_clients=${MAX_CLIENTS}`,
      `max_per_ip=${MAX_CLIENTS}`,
      'xferlog_enable=NO',
      'dual_log_enable=NO',
      'syslog_enable=NO',
      'log_ftp_protocol=NO',
      'ssl_enable=NO',
      'tcp_wrappers=NO',
      // 3.0.3's seccomp filter kills sessions on current kernels/glibc ("500 OOPS: child died").
      'seccomp_sandbox=NO',
      // Per-session PID/network namespaces cost a clone(CLONE_NEWNET) per login; most
      // deployments (and containers, where they may be refused) run without them.
      'isolate=NO',
      'isolate_network=NO',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return startProcess('vsftpd', o, m.vsftpd.bin, [conf], { ...process.env, LD_LIBRARY_PATH: m.ldLibraryPath });
}

async function startPureFtpd(o: PeerOptions): Promise<RunningPeer> {
  checkOptions(o);
  const m = manifest();
  const { uid, gid } = systemUser(o.user); // the virtual user runs as this system uid/gid
  await mkdir(o.workdir, { recursive: true });
  await prepareRootFor(o.root, uid, gid);
  const passwd = join(o.workdir, 'pureftpd.passwd');
  const pdb = join(o.workdir, 'pureftpd.pdb');
  await rm(passwd, { force: true });
  await rm(pdb, { force: true });
  const env = { ...process.env, LD_LIBRARY_PATH: m.ldLibraryPath };
  // Virtual user in a PureDB, chrooted at o.root ("/./"). Its password is a yescrypt hash,
  // the same crypt(3) scheme and cost as the system password vsftpd checks: pure-pw's own
  // default (argon2id, m=8 MiB, t=1023) costs ~3.5 s of CPU per login on the bench machine.
  const hash = await yescrypt(o.password);
  await writeFile(passwd, `${o.user}:${hash}:${uid}:${gid}::${resolve(o.root)}/./::::::::::::\n`, { mode: 0o600 });
  await run(m['pure-ftpd'].purePw, ['mkdb', pdb, '-f', passwd], undefined, env);
  const [lo, hi] = o.passivePorts;
  // pure-ftpd silently lowers its client limit (-c) to half the number of passive ports.
  const clients = Math.min(MAX_CLIENTS, Math.floor((hi - lo + 1) / 2));
  if (clients < MIN_CLIENTS) {
    process.emitWarning(
      `pure-ftpd: passive range ${lo}-${hi} holds ${hi - lo + 1} ports, so it accepts only ${clients} clients; give it >= ${2 * MIN_CLIENTS} ports`,
    );
  }
  const args = [
    '-S', `${HOST},${o.port}`,
    '-p', `${lo}:${hi}`,
    '-P', HOST,
    '-c', String(clients),
    '-C', String(clients),
    '-l', `puredb:${pdb}`,
    '-E', // no anonymous
    '-A', // chroot everyone
    '-H', // no reverse DNS
    '-f', 'none', // no syslog at all
    '-Y', '0', // no TLS
  ];
  return startProcess('pure-ftpd', o, m['pure-ftpd'].bin, args, env);
}

/** The JSON config both scripted peers read: where to serve, and only a hash of the password. */
async function writeScriptConfig(o: PeerOptions, name: string, extra: Record<string, unknown> = {}): Promise<string> {
  await mkdir(o.workdir, { recursive: true });
  await mkdir(o.root, { recursive: true });
  const cfg = join(o.workdir, `${name}.json`);
  const config = { host: HOST, port: o.port, root: resolve(o.root), user: o.user, hash: await scryptHash(o.password), passivePorts: o.passivePorts, ...extra };
  await writeFile(cfg, JSON.stringify(config), { mode: 0o600 });
  return cfg;
}

async function startPyftpdlib(o: PeerOptions): Promise<RunningPeer> {
  checkOptions(o);
  const m = manifest();
  const cfg = await writeScriptConfig(o, 'pyftpdlib', { maxClients: MAX_CLIENTS });
  const env = { ...process.env, PYTHONPATH: m.pyftpdlib.pythonpath, PYTHONDONTWRITEBYTECODE: '1' };
  return startProcess('pyftpdlib', o, 'python3', ['-W', 'ignore::DeprecationWarning', join(PEERS_DIR, 'pyftpdlib-server.py'), cfg], env);
}

async function startFtpSrv(o: PeerOptions): Promise<RunningPeer> {
  checkOptions(o);
  manifest();
  const cfg = await writeScriptConfig(o, 'ftp-srv');
  // Plain node (no tsx loader): the peer must not pay for ours.
  return startProcess('ftp-srv', o, process.execPath, [join(PEERS_DIR, 'ftp-srv-server.mjs'), cfg], {
    ...process.env,
    NODE_OPTIONS: '',
  });
}

export const peers: Record<PeerName, (o: PeerOptions) => Promise<RunningPeer>> = {
  vsftpd: startVsftpd,
  'pure-ftpd': startPureFtpd,
  pyftpdlib: startPyftpdlib,
  'ftp-srv': startFtpSrv,
};
