/**
 * A quick check of a freshly started server before it is measured: login,
 * FEAT (does it offer MLSD?), one RETR of the small file (right size?), and
 * whether it accepts USER and PASS sent in one write.
 */
import net from 'node:net';
import { Control, epsvPort, FtpError } from './loadgen/control.js';

export interface ProbeResult {
  mlsd: boolean;
  pipelineLogin: boolean;
  greeting: string;
}

export async function probe(host: string, port: number, user: string, password: string, small: { path: string; size: number }): Promise<ProbeResult> {
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
    ctl.send('EPSV\r\n');
    const dataPort = epsvPort(await ctl.want(229, 'EPSV'));
    const data = net.connect({ host, port: dataPort });
    let got = 0;
    const ended = new Promise<void>((resolve, reject) => {
      data.on('data', (b: Buffer) => (got += b.length));
      data.once('end', () => resolve());
      data.once('error', reject);
    });
    ended.catch(() => {});
    ctl.send(`RETR ${small.path}\r\n`);
    await ctl.want(1, 'RETR');
    await ctl.want(2, 'RETR (end)');
    await ended;
    data.destroy();
    if (got !== small.size) throw new FtpError(`RETR ${small.path}: ${got} bytes, expected ${small.size}`);
    ctl.send('QUIT\r\n');
    await ctl.expect().catch(() => undefined);
    ctl.destroy();
    return { mlsd, pipelineLogin: await pipelinedLoginWorks(host, port, user, password), greeting: greeting.split('\r\n')[0]! };
  } finally {
    clearTimeout(timer);
    ctl.destroy();
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
