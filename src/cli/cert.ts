/**
 * `ferry cert --self-signed --host NAME [--out DIR]`: a certificate and key
 * for a quick FTPS start (clients will ask to trust it; use a CA-issued
 * certificate for anything public).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createSelfSignedCertificate } from '../tls/self-signed.js';

interface CertFlags {
  selfSigned: boolean;
  host: string[];
  out: string;
  days: number;
  force: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((h) => h.trim()).filter(Boolean)];
}

function parseDays(value: string): number {
  const days = Number(value);
  if (!/^\d+$/.test(value) || days < 1 || days > 3650) throw new InvalidArgumentError('expected a number of days from 1 to 3650.');
  return days;
}

async function writeCertificate(flags: CertFlags, fail: (message: string) => never): Promise<void> {
  if (!flags.selfSigned) fail('cert: only --self-signed is supported; for a public server use a certificate from a CA (e.g. Let\'s Encrypt).');
  if (flags.host.length === 0) fail('cert: give --host with the name (or IP address) clients connect to, e.g. --host ftp.example.com');
  const { cert, key } = createSelfSignedCertificate({ hosts: flags.host, days: flags.days });
  const out = path.resolve(flags.out);
  await mkdir(out, { recursive: true });
  const certFile = path.join(out, 'cert.pem');
  const keyFile = path.join(out, 'key.pem');
  const flag = flags.force ? 'w' : 'wx'; // never overwrite a key by accident
  try {
    await writeFile(keyFile, key, { mode: 0o600, flag });
    await writeFile(certFile, cert, { mode: 0o644, flag });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') fail(`cert: ${keyFile} or ${certFile} already exists; pass --force to replace them.`);
    throw err;
  }
  process.stdout.write(
    [
      `Wrote ${certFile} (self-signed for ${flags.host.join(', ')}, valid ${flags.days} days) and ${keyFile} (private, mode 0600).`,
      `Serve FTPS with: ferry --tls-cert ${certFile} --tls-key ${keyFile}`,
      'Clients will ask to trust this certificate (or need --cacert / ssl:ca-file with it).',
    ].join('\n') + '\n',
  );
}

export function certCommand(program: Command, fail: (message: string) => never): void {
  program
    .command('cert')
    .description('write a TLS certificate and key for FTPS')
    .option('--self-signed', 'make a self-signed certificate', false)
    .option('--host <name>', 'host name or IP address clients use (repeatable, or comma-separated)', collect, [])
    .option('--out <dir>', 'folder for cert.pem and key.pem', '.')
    .option('--days <n>', 'validity in days', parseDays, 365)
    .option('--force', 'replace existing cert.pem and key.pem', false)
    .action((flags: CertFlags) => writeCertificate(flags, fail));
}
