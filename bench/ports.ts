/**
 * Free ports on 127.0.0.1, chosen at run time: for each server one control
 * port and a passive range right after it, all outside the kernel's
 * ephemeral range (so the generator's outgoing connections never take a
 * passive port a server wants to bind).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    /* not Linux */
  }
  return [32768, 60999];
}

function free(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

export interface PortBlock {
  port: number;
  passivePorts: [number, number];
}

/** `count` disjoint blocks of 1 control port + `passive` passive ports, every port free now. */
export async function allocatePorts(host: string, count: number, passive: number, from = 5000): Promise<PortBlock[]> {
  const [ephLo, ephHi] = ephemeralRange();
  const blocks: PortBlock[] = [];
  let base = from;
  const size = passive + 1;
  while (blocks.length < count) {
    // Skip over the ephemeral range.
    if (base + size - 1 >= ephLo && base <= ephHi) base = ephHi + 1;
    if (base + size - 1 > 65535) throw new Error(`not enough free ports for ${count} servers × ${size} (from ${from})`);
    let clash = -1;
    for (let p = base; p < base + size; p++) {
      if (!(await free(host, p))) {
        clash = p;
        break;
      }
    }
    if (clash >= 0) {
      base = clash + 1;
      continue;
    }
    blocks.push({ port: base, passivePorts: [base + 1, base + passive] });
    base += size;
  }
  return blocks;
}
