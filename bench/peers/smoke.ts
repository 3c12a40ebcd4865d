/**
 * Smoke test of the peer servers: for each peer, start it, then over loopback
 * log in, EPSV, STOR, RETR, list (MLSD where offered, else LIST), check a wrong
 * password is refused and the session is rooted at o.root, then stop it and check
 * no process is left. Run from the repo root after install.sh:
 *   node --import tsx bench/peers/smoke.ts [peer ...]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { peers, peerVersions, type PeerName } from './peers.js';

const USER = 'ferrybench';
const PASSWORD = 'benchpass';

async function roundTrip(name: PeerName, port: number, root: string): Promise<string> {
  const client = new Client(5_000);
  try {
    await client.access({ host: '127.0.0.1', port, user: USER, password: PASSWORD });
    const pwd = await client.pwd();
    if (pwd !== '/') throw new Error(`pwd after login is ${pwd}, expected /`);
    const payload = Buffer.alloc(256 * 1024, name);
    await writeFile(join(root, 'seed.bin'), payload);
    const src = join(root, '..', 'upload.bin');
    await writeFile(src, payload);
    await client.uploadFrom(src, 'up.bin'); // basic-ftp opens data connections with EPSV
    const stored = await readFile(join(root, 'up.bin'));
    if (!stored.equals(payload)) throw new Error('STOR content differs');
    const chunks: Buffer[] = [];
    await client.downloadTo(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      }),
      'seed.bin',
    );
    if (!Buffer.concat(chunks).equals(payload)) throw new Error('RETR content differs');
    const mlsd = client.ftp.socket && (await client.features()).has('MLST');
    const names = (await client.list()).map((f) => f.name).sort();
    if (!names.includes('up.bin') || !names.includes('seed.bin')) throw new Error(`listing lacks files: ${names.join(',')}`);
    return `login, EPSV, STOR, RETR, ${mlsd ? 'MLSD' : 'LIST'} ok`;
  } finally {
    client.close();
  }
}

async function badLogin(port: number): Promise<void> {
  const client = new Client(5_000);
  try {
    await client.access({ host: '127.0.0.1', port, user: USER, password: 'wrong' });
    throw new Error('wrong password accepted');
  } catch (err) {
    if (err instanceof Error && err.message === 'wrong password accepted') throw err;
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const wanted = (process.argv.slice(2) as PeerName[]).filter((n) => n in peers);
  const names = wanted.length ? wanted : (Object.keys(peers) as PeerName[]);
  const versions = peerVersions();
  let failed = 0;
  for (const [i, name] of names.entries()) {
    const base = await mkdtemp(join(tmpdir(), `ferry-peer-${name}-`));
    const root = join(base, 'root');
    const port = 21_210 + i;
    const t0 = performance.now();
    try {
      const peer = await peers[name]({
        root,
        port,
        passivePorts: [40_000 + i * 4_000, 40_000 + i * 4_000 + 3_999],
        user: USER,
        password: PASSWORD,
        workdir: join(base, 'work'),
      });
      const started = performance.now() - t0;
      try {
        const result = await roundTrip(name, port, root);
        await badLogin(port);
        const pids = peer.pids();
        console.log(`ok   ${name} ${versions[name]}: started in ${started.toFixed(0)} ms; ${result}; wrong password refused; pids ${pids.join(',')}`);
      } finally {
        await peer.stop();
      }
      const left = peer.pids();
      if (left.length) throw new Error(`processes left after stop: ${left.join(',')}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  }
  console.log(`${names.length - failed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

await main();
