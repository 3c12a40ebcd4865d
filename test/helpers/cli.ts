/**
 * The `ferry` command as a child process, for tests that use it as a user
 * would. Every process started is killed in the test's cleanup, workers too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Cleanup } from './server.js';

const CLI = path.resolve('src/cli/main.ts');
// Children may run in other folders, so name the loader by its resolved URL.
const TSX = import.meta.resolve('tsx');

export interface RunningCli {
  child: ChildProcess;
  port: number;
  /** Standard output and error as they came, interleaved. */
  output: () => string;
  /** Each stream alone (log lines; the banner and messages for people). */
  stdout: () => string;
  stderr: () => string;
}

/** Run `ferry ARGS` without waiting for anything; `input`, if given, is its standard input (a pipe). */
export function runCli(args: string[], cwd: string, env?: NodeJS.ProcessEnv, input?: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { cwd, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (input !== undefined) child.stdin!.end(input);
  return child;
}

/** Start `ferry ARGS` and wait (bounded) until it prints the URL with its port. */
export async function startCli(t: Cleanup, args: string[], cwd: string, readyTimeoutMs = 20_000, env?: NodeJS.ProcessEnv, input?: string): Promise<RunningCli> {
  const child = runCli(args, cwd, env, input);
  let out = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => ((out += d), (stdout += d)));
  child.stderr!.on('data', (d) => ((out += d), (stderr += d)));
  t.after(async () => {
    const workers = child.pid ? await childPids(child.pid) : [];
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    for (const pid of workers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  const deadline = Date.now() + readyTimeoutMs;
  while (!/ftp:\/\/[^ ]*127\.0\.0\.1:(\d+)\//.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`ferry did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port: Number(/127\.0\.0\.1:(\d+)\//.exec(out)![1]), output: () => out, stdout: () => stdout, stderr: () => stderr };
}

/** Wait (bounded) for a child to exit; kill it if it does not. */
export async function exitOf(child: ChildProcess, timeoutMs = 15_000): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return code as number | null;
}

/** The child processes of `parent` (cluster workers), from /proc. */
export async function childPids(parent: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === parent) pids.push(Number(entry));
  }
  return pids;
}

/** Run `ferry ARGS` to completion with `input` on its standard input (bounded). */
export async function runCliToEnd(args: string[], cwd: string, input = '', env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(input);
  const code = await exitOf(child, 30_000);
  return { code, stdout, stderr };
}
