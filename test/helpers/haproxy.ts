/**
 * HAProxy (from Debian) as a child process in front of a Ferry listener, in
 * TCP mode with `send-proxy` or `send-proxy-v2`, on a free loopback port.
 * Stopped by the test's cleanup, even when the test fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Cleanup } from './server.js';

export function hasHaproxy(): boolean {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0;
}

export interface HaproxyOptions {
  /** Where Ferry listens (127.0.0.1). */
  backendPort: number;
  /** v1 (`send-proxy`) or v2 (`send-proxy-v2`). */
  version: 1 | 2;
  /** The source address of HAProxy's connections to Ferry: the "balancer's address" Ferry must trust. */
  source: string;
}

export interface RunningHaproxy {
  port: number;
  output: () => string;
}

/** A loopback port nobody listens on right now. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Whether something listens on 127.0.0.1:port, from /proc/net/tcp (no probe connection reaches Ferry). */
async function listening(port: number): Promise<boolean> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return table.split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[1] === local && fields[3] === '0A';
  });
}

export async function startHaproxy(t: Cleanup, options: HaproxyOptions): Promise<RunningHaproxy> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-haproxy-'));
  let child: ChildProcess | null = null;
  t.after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
  });
  // A port freed by the probe may be taken before HAProxy binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const config = [
      'global',
      '  maxconn 200',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend ftp',
      `  bind 127.0.0.1:${port}`,
      '  default_backend ferry',
      'backend ferry',
      `  server ferry 127.0.0.1:${options.backendPort} ${options.version === 1 ? 'send-proxy' : 'send-proxy-v2'} source ${options.source}`,
      '',
    ].join('\n');
    const file = path.join(dir, 'haproxy.cfg');
    await writeFile(file, config);
    let out = '';
    const started = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    started.stdout!.on('data', (d) => (out += d));
    started.stderr!.on('data', (d) => (out += d));
    const deadline = Date.now() + 5000;
    while (started.exitCode === null && !(await listening(port))) {
      if (Date.now() > deadline) throw new Error(`haproxy did not listen within 5 s: ${out}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    if (started.exitCode === null) return { port, output: () => out };
    if (!/cannot bind|Address already in use/i.test(out)) throw new Error(`haproxy exited with ${started.exitCode}: ${out}`);
  }
  throw new Error('haproxy found no free port in 3 attempts');
}
