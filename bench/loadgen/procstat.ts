/**
 * What the benchmark reads from /proc about a server: its processes, their CPU
 * time and their memory. Linux only.
 *
 * CPU: utime + stime of every live process of the server, plus cutime + cstime
 * (the time of children they have already reaped), in clock ticks. A forking
 * server (vsftpd, pure-ftpd) runs a process per session; when one ends and is
 * reaped, its time moves into its parent's cutime, so a before/after
 * difference of this sum still counts it. (Sessions reaped by a process outside
 * the tree would be lost; none of the benchmarked servers does that.)
 *
 * Memory: Pss from /proc/PID/smaps_rollup (shared pages divided among the
 * processes sharing them, so summing over processes neither double counts a
 * forking server's shared code nor hides its private pages); RSS when
 * smaps_rollup cannot be read.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;
/** Clock ticks per second (`getconf CLK_TCK`, 100 on Linux). */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface Stat {
  pid: number;
  ppid: number;
  pgrp: number;
  /** utime + stime, ticks */
  own: number;
  /** cutime + cstime, ticks */
  children: number;
}

function readStat(pid: number | string): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null; // exited meanwhile
  }
  // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ..."
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid: Number(pid),
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    own: Number(f[11]) + Number(f[12]),
    children: Number(f[13]) + Number(f[14]),
  };
}

function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const entry of readdirSync('/proc')) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const s = readStat(entry);
    if (s) out.push(s);
  }
  return out;
}

/** `leader` and every process descending from it (or in its process group), zombies included. */
export function processTree(leader: number): number[] {
  return treeStats(leader, allStats()).map((s) => s.pid);
}

function treeStats(leader: number, stats: Stat[]): Stat[] {
  const found = new Map<number, Stat>();
  for (const s of stats) if (s.pid === leader || s.pgrp === leader) found.set(s.pid, s);
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of stats) {
      if (!found.has(s.pid) && found.has(s.ppid)) {
        found.set(s.pid, s);
        grew = true;
      }
    }
  }
  return [...found.values()];
}

/**
 * CPU seconds used so far by a set of processes (own + reaped children). Pass
 * either a leader pid (its whole tree is read) or explicit pids.
 */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const s = readStat(pid);
    if (s) ticks += s.own + s.children;
  }
  return ticks / clockTicks();
}

/** CPU seconds of a whole process tree (rooted at `leader`), read in one /proc scan. */
export function treeCpuSeconds(leader: number): number {
  let ticks = 0;
  for (const s of treeStats(leader, allStats())) ticks += s.own + s.children;
  return ticks / clockTicks();
}

export interface MemorySample {
  /** Sum over the processes, KiB. */
  kib: number;
  processes: number;
  /** 'pss' when every process had smaps_rollup, else 'rss' for some. */
  source: 'pss' | 'rss';
}

/** Sum of Pss (or RSS) over `pids`, KiB. */
export function memoryKiB(pids: readonly number[]): MemorySample {
  let kib = 0;
  let processes = 0;
  let source: 'pss' | 'rss' = 'pss';
  for (const pid of pids) {
    let value: number | null = null;
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
      if (m) value = Number(m[1]);
    } catch {
      /* no smaps_rollup (old kernel, or gone) */
    }
    if (value === null) {
      try {
        const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
        if (m) {
          value = Number(m[1]);
          source = 'rss';
        }
      } catch {
        continue; // exited meanwhile
      }
    }
    if (value === null) continue;
    kib += value;
    processes++;
  }
  return { kib, processes, source };
}

/** Whole-machine CPU counters from /proc/stat (all cores), in ticks: busy = everything but idle and iowait. */
export function machineTicks(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}
