/**
 * Runs an operator's command for an event (`hooks.commands` in the config):
 * an argument list, never a shell string, so no field of the event (a file
 * name a client chose) is ever parsed by a shell. The event goes in as JSON
 * on standard input and as FERRY_* variables (hook-event.ts); the rest of
 * the daemon's environment does not (it may hold S3 keys or
 * FERRY_USER_PASSWORD): only PATH, HOME, LANG, LC_ALL, TZ and the hook's own
 * `env`.
 *
 * The command runs in a process group of its own, so that the timeout's
 * SIGTERM (and SIGKILL KILL_GRACE_MS later) reaches what a script started
 * too, and a stuck grandchild cannot hold the output pipes open.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Logger } from './logger.js';
import { eventEnvironment, type HookDelivery } from './hook-event.js';

export interface CommandHook {
  /** The program and its arguments. */
  command: readonly string[];
  /** Extra environment variables for it. */
  env?: Readonly<Record<string, string>>;
  /** SIGTERM after this long, SIGKILL KILL_GRACE_MS later. */
  timeoutMs: number;
}

/** Between the timeout's SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 2000;
/** Output kept for the log, per stream. */
const OUTPUT_LOG_BYTES = 1024;

const INHERITED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'];

export interface CommandOutcome {
  /** Exit status; null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  /** The first OUTPUT_LOG_BYTES of each stream. */
  stdout: string;
  stderr: string;
}

/** Runs `hook` for `d`; resolves when it ended (never rejects: a command that cannot start is an outcome too). */
export function runCommand(hook: CommandHook, d: HookDelivery): Promise<CommandOutcome> {
  const started = performance.now();
  const env: Record<string, string> = {};
  for (const name of INHERITED) if (process.env[name] !== undefined) env[name] = process.env[name]!;
  const [program, ...args] = hook.command;
  return new Promise((resolve) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(program!, args, { env: { ...env, ...hook.env, ...eventEnvironment(d) }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      // spawn throws (rather than emitting 'error') for arguments it refuses outright.
      resolve({ exitCode: null, signal: null, timedOut: false, durationMs: Math.round(performance.now() - started), stdout: '', stderr: (err as Error).message });
      return;
    }
    const out = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
    const keep = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      // Read to the end (a full pipe would block the command), keep the start.
      if (out[stream].length < OUTPUT_LOG_BYTES) out[stream] = Buffer.concat([out[stream], chunk]).subarray(0, OUTPUT_LOG_BYTES);
    };
    child.stdout.on('data', keep('stdout'));
    child.stderr.on('data', keep('stderr'));
    // A command that does not read its input closes the pipe: EPIPE is no failure of ours.
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(d));
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, hook.timeoutMs);
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, stderr?: string): void => {
      clearTimeout(timer);
      clearTimeout(killer);
      resolve({
        exitCode,
        signal,
        timedOut,
        durationMs: Math.round(performance.now() - started),
        stdout: out.stdout.toString('utf8'),
        stderr: stderr ?? out.stderr.toString('utf8'),
      });
    };
    // 'close': the process ended and its output is read; 'error': it could not start (ENOENT, EACCES).
    child.once('close', (code, signal) => finish(code, signal));
    child.once('error', (err) => finish(null, null, err.message));
  });
}

/** Runs it and logs the outcome: info when it exited 0, warn otherwise. */
export async function runCommandLogged(hook: CommandHook, d: HookDelivery, logger: Logger): Promise<CommandOutcome> {
  const outcome = await runCommand(hook, d);
  const fields = { event: d.event, eventId: d.id, command: hook.command[0], ...outcome };
  if (outcome.exitCode === 0) logger.info(fields, 'hook command done');
  else if (outcome.timedOut) logger.warn(fields, `hook command timed out after ${hook.timeoutMs} ms and was stopped`);
  else logger.warn(fields, 'hook command failed');
  return outcome;
}
