/**
 * A quick check of a freshly started server before it is measured: login,
 * FEAT (does it offer MLSD?), one RETR of the small file (right size?), and
 * whether it accepts USER and PASS sent in one write.
 */
import net from 'node:net';
import { Control, epsvPort, FtpError } from './loadgen/control.js';

export interface ProbeResult {
  mlsd: boolean;
  /** One listing of the big directory with the command the list workload will use. */
  listing: { command: 'MLSD' | 'LIST'; bytes: number; lines: number };
  pipelineLogin: boolean;
  greeting: string;
}

export async function probe(
  host: string,
  port: number,
  user: string,
  password: string,
  small: { path: string; size: number },
  /** List this directory once (skipped when null: the listing leaves garbage that would blur idle's memory baseline). */
  listDir: string | null,
): Promise<ProbeResult> {
  const ctl = Control.connect(host, port);
  const timer = setTimeout(() => ctl.destroy(), 15_000);
  try {
    const greeting = (await ctl.want(220, 'greeting')).text;
    ctl.send(`USER ${user}\r\n`);
    await ctl.want(331, 'USER');
    ctl.send(`PASS ${password}\r\n`);
    await ctl.want(2, 'PASS');
    ctl.send('FEAT\r\n');
    const feat = await ctl.expect();
    const mlsd = feat.code === 211 && /^\s*MLST\b/im.test(feat.text);
    ctl.send('TYPE I\r\n');
    await ctl.want(200, 'TYPE I');
    const got = await transfer(ctl, host, `RETR ${small.path}`);
    if (got.length !== small.size) throw new FtpError(`RETR ${small.path}: ${got.length} bytes, expected ${small.size}`);
    const command = mlsd ? 'MLSD' : 'LIST';
    let listing: ProbeResult['listing'] = { command, bytes: 0, lines: 0 };
    if (listDir !== null) {
      const text = (await transfer(ctl, host, `${command} ${listDir}`)).toString('latin1');
      listing = { command, bytes: Buffer.byteLength(text, 'latin1'), lines: text.split('\n').filter((l) => l.trim() !== '').length };
    }
    ctl.send('QUIT\r\n');
    await ctl.expect().catch(() => undefined);
    ctl.destroy();
    return { mlsd, listing, pipelineLogin: await pipelinedLoginWorks(host, port, user, password), greeting: greeting.split('\r\n')[0]! };
  } finally {
    clearTimeout(timer);
    ctl.destroy();
  }
}

/** EPSV + `command`, the data connection's bytes. */
async function transfer(ctl: Control, host: string, command: string): Promise<Buffer> {
  ctl.send('EPSV\r\n');
  const dataPort = epsvPort(await ctl.want(229, 'EPSV'));
  const data = net.connect({ host, port: dataPort });
  const chunks: Buffer[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    data.on('data', (b: Buffer) => chunks.push(b));
    data.once('end', () => resolve());
    data.once('error', reject);
  });
  ended.catch(() => {});
  try {
    ctl.send(`${command}\r\n`);
    await ctl.want(1, command);
    await ctl.want(2, `${command} (end)`);
    await ended;
    return Buffer.concat(chunks);
  } finally {
    data.destroy();
  }
}

async function pipelinedLoginWorks(host: string, port: number, user: string, password: string): Promise<boolean> {
  const ctl = Control.connect(host, port);
  const timer = setTimeout(() => ctl.destroy(), 5_000);
  try {
    await ctl.want(220, 'greeting');
    ctl.send(`USER ${user}\r\nPASS ${password}\r\n`);
    await ctl.want(331, 'USER');
    await ctl.want(230, 'PASS');
    ctl.send('NOOP\r\n');
    await ctl.want(200, 'NOOP');
    ctl.send('QUIT\r\n');
    await ctl.expect().catch(() => undefined);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    ctl.destroy();
  }
}
