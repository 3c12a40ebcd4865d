/**
 * Upload temp files: their names, this process's registry of the ones it
 * is writing, and the sweep that removes those a dead process left behind.
 *
 * A full upload to local disk goes to `.ferry-upload-<host>-<pid>-<start>-<random>.part`
 * next to its target (see LocalStorage). The name says whose it is:
 *   - `host`: 8 hex digits of a hash of the host name. Processes on other
 *     hosts (a shared NFS volume, another container) cannot be checked from
 *     here, so their files are never removed.
 *   - `pid` and `start`: the writer's process id and its start time (field
 *     22 of /proc/PID/stat, clock ticks since boot; `0` where there is no
 *     /proc). A pid alone is not enough: after a restart, or a reboot, the
 *     same pid may belong to another live process. The pair is unique on a
 *     host for as long as the process lives, and checkable by anyone.
 * Why not an advisory lock (flock) held while writing: Node has no flock,
 * and a name can be judged from a directory listing, without opening the file.
 *
 * A file is an orphan, and removed by a sweep, only when it is this host's
 * and its writer is gone: no process with that pid, or one that started at
 * another time (the pid was reused). Without /proc the start cannot be
 * checked and a live pid counts as the writer (a reused pid leaves the file
 * for a later sweep, never removes a live upload). This process's own files
 * are never swept: the registry below removes them (on abort, and at exit).
 * Names that do not parse (another tool's, an older Ferry's) are left alone.
 *
 * Where sweeps run: the CLI sweeps the configured local root recursively in
 * the background at start (cluster mode: the primary, at start and after
 * each worker dies), bounded in directories; LocalStorage sweeps a directory
 * (not recursively) the first time this process uploads into it, which
 * covers homes the CLI cannot know in advance (an auth hook's, an
 * embedder's).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readlinkSync, unlinkSync, type Dir } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';

const TEMP_PREFIX = '.ferry-upload-';
const TEMP_SUFFIX = '.part';

/** Directories one recursive sweep visits at most: a bound on the background walk of a huge tree. */
const SWEEP_MAX_DIRECTORIES = 100_000;
/** Directories remembered as swept by the lazy, per-upload sweep before the memory starts over. */
const SWEPT_REMEMBERED = 10_000;

const NAME = /^\.ferry-upload-([0-9a-f]{8})-(\d+)-(\d+)-[0-9a-f]+\.part$/;

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}

/**
 * Whose pids a temp file's pid is: the host name and, on Linux, the PID
 * namespace (containers that share a host name and a volume, e.g. with host
 * networking, each have their own pid 1). A file with another tag is never
 * judged from here.
 */
function hostTag(): string {
  let pidNamespace = '';
  try {
    pidNamespace = readlinkSync('/proc/self/ns/pid');
  } catch {
    // not Linux, or /proc not mounted: the host name alone
  }
  return createHash('sha256').update(os.hostname()).update('\0').update(pidNamespace).digest('hex').slice(0, 8);
}

/**
 * The start time of process `pid` from /proc (clock ticks since boot); null
 * if no such process exists; '0' if it exists but its start is unknown.
 */
async function processStart(pid: number): Promise<string | null> {
  let stat: string;
  try {
    stat = await fsp.readFile(`/proc/${pid}/stat`, 'latin1');
  } catch {
    // No /proc (not Linux), or it hides other users' processes (hidepid):
    // ask the kernel whether the pid exists at all.
    return pidStatus(pid);
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '0';
}

/** '0' if a process with this pid exists (EPERM: it does, another user's), null if not. */
function pidStatus(pid: number): string | null {
  try {
    process.kill(pid, 0);
    return '0';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH' ? null : '0';
  }
}

interface Owner {
  readonly host: string;
  readonly pid: number;
  readonly start: string;
}

let self: Promise<Owner> | undefined;
function selfOwner(): Promise<Owner> {
  self ??= processStart(process.pid).then((start) => ({ host: hostTag(), pid: process.pid, start: start ?? '0' }));
  return self;
}

/** A fresh temp file name for this process (no directory). */
export async function tempFileName(): Promise<string> {
  const { host, pid, start } = await selfOwner();
  return `${TEMP_PREFIX}${host}-${pid}-${start}-${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`;
}

/** Whether the writer of temp file `name` is known to be gone (see the header for the rule). */
export async function isOrphan(name: string): Promise<boolean> {
  const match = NAME.exec(name);
  if (!match) return false;
  const me = await selfOwner();
  const [, host, pidText, start] = match;
  const pid = Number(pidText);
  if (host !== me.host || pid === me.pid || !Number.isSafeInteger(pid)) return false;
  const now = await processStart(pid);
  if (now === null) return true;
  return start !== '0' && now !== '0' && now !== start;
}

// ---- this process's temp files ---------------------------------------------

/** Temp files this process is writing, by path. */
const live = new Set<string>();
let exitHook = false;

/**
 * Note a temp file this process is about to create. Every registered file
 * still there when the process exits (`process.exit` after a second Ctrl-C,
 * a cluster worker whose primary is gone, an uncaught exception) is removed
 * by an 'exit' listener. Synchronous there, because nothing asynchronous
 * runs after 'exit'; never on a transfer's path.
 */
export function trackTempFile(path: string): void {
  live.add(path);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const file of live) {
      try {
        unlinkSync(file);
      } catch {
        // gone already, or not ours to remove any more
      }
    }
    live.clear();
  });
}

/** The temp file became the target (renamed into place) or is gone: no longer ours to remove. */
export function untrackTempFile(path: string): void {
  live.delete(path);
}

/** Remove a temp file of an aborted upload. Never rejects. */
export async function discardTempFile(path: string): Promise<void> {
  try {
    await fsp.unlink(path);
    untrackTempFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') untrackTempFile(path);
    // Any other failure: still registered, so the exit listener tries again.
  }
}

// ---- sweeps ----------------------------------------------------------------

export interface SweepResult {
  files: number;
  bytes: number;
  /** Directories read. */
  directories: number;
  /** The walk stopped at its bound before seeing the whole tree. */
  truncated: boolean;
}

/**
 * Remove orphan temp files in `dir` (and below it, with `recursive`; symlinks
 * are never followed). Never throws: unreadable directories are skipped.
 * Logs what it removed (info) when it removed anything, and a truncated walk (warn).
 */
export async function sweepTempFiles(dir: string, options: { recursive?: boolean; logger?: Logger; maxDirectories?: number } = {}): Promise<SweepResult> {
  const result: SweepResult = { files: 0, bytes: 0, directories: 0, truncated: false };
  const max = options.maxDirectories ?? SWEEP_MAX_DIRECTORIES;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    result.directories += 1;
    let handle: Dir;
    try {
      handle = await fsp.opendir(current, { bufferSize: 256 });
    } catch {
      continue;
    }
    try {
      for await (const entry of handle) {
        if (entry.isDirectory()) {
          if (!options.recursive) continue;
          // Bounded: folders read plus folders queued never exceed `max`.
          if (result.directories + pending.length < max) pending.push(join(current, entry.name));
          else result.truncated = true;
        } else if (entry.isFile() && isTempName(entry.name) && (await isOrphan(entry.name))) {
          const file = join(current, entry.name);
          try {
            const { size } = await fsp.lstat(file);
            await fsp.unlink(file);
            result.files += 1;
            result.bytes += size;
          } catch {
            // removed meanwhile (another sweep), or not ours to remove
          }
        }
      }
    } catch {
      // the directory went away while being read
    }
  }
  const log = options.logger;
  if (log && result.files > 0) log.info({ path: dir, files: result.files, bytes: result.bytes }, 'removed temp files left by a stopped process');
  if (log && result.truncated) log.warn({ path: dir, directories: result.directories }, 'temp file sweep stopped at its bound; deeper folders are swept when an upload reaches them');
  return result;
}

const swept = new Set<string>();

/** The lazy sweep: `dir` alone, the first time this process uploads into it; runs in the background. */
export function sweepDirectoryOnce(dir: string, logger?: Logger): void {
  if (swept.has(dir)) return;
  if (swept.size >= SWEPT_REMEMBERED) swept.clear();
  swept.add(dir);
  void sweepTempFiles(dir, { logger });
}
