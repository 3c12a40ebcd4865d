/**
 * `ferry cert --self-signed --host NAME [--out DIR]`: a certificate and key
 * for a quick FTPS start (clients will ask to trust it; use a CA-issued
 * certificate for anything public).
 */
import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { isHostName } from '../protocol/address.js';
import { createSelfSignedCertificate } from '../tls/self-signed.js';

interface CertFlags {
  selfSigned: boolean;
  host: string[];
  out: string;
  days: number;
  force: boolean;
}

function collect(value: string, previous: string[]): string[] {
  const hosts = value.split(',').map((h) => h.trim()).filter(Boolean);
  for (const host of hosts) {
    // A certificate may also name a wildcard (*.example.com).
    if (!isIP(host) && !isHostName(host.replace(/^\*\./, ''))) throw new InvalidArgumentError(`"${host}" is not a host name or IP address (e.g. ftp.example.com, 192.0.2.10).`);
  }
  return [...previous, ...hosts];
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
  // Check both before writing either: never leave a key without its certificate, never overwrite by accident.
  if (!flags.force && (await exists(keyFile) || await exists(certFile))) {
    fail(`cert: ${keyFile} or ${certFile} already exists; pass --force to replace them.`);
  }
  // Written beside and renamed into place: a replaced key is never readable by others, even for a moment.
  await replaceFile(keyFile, key, 0o600);
  await replaceFile(certFile, cert, 0o644);
  process.stdout.write(
    [
      `Wrote ${certFile} (self-signed for ${flags.host.join(', ')}, valid ${flags.days} days) and ${keyFile} (private, mode 0600).`,
      `Serve FTPS with: ferry --tls-cert ${certFile} --tls-key ${keyFile}`,
      'Clients will ask to trust this certificate (or need --cacert / ssl:ca-file with it).',
    ].join('\n') + '\n',
  );
}

function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

async function replaceFile(file: string, content: string, mode: number): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, content, { mode, flag: 'wx' });
    await chmod(temp, mode); // the umask may have taken bits off
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
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
