/**
 * The CLI's TLS flags: `--tls-cert/--tls-key` (PEM files), optional
 * `--tls-ca`, `--tls-implicit-port` and `--tls-policy`. Files are read at
 * start and again on SIGHUP, so a renewed certificate (certbot, ACME) is
 * picked up without dropping sessions.
 */
import { readFileSync } from 'node:fs';
import type { FtpServer } from '../server/server.js';
import type { Logger } from '../observability/logger.js';
import { TLS_POLICIES, type TlsCredentials, type TlsOptions, type TlsPolicy } from '../tls/options.js';

export interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsImplicitPort?: number;
  tlsPolicy?: TlsPolicy;
}

export { TLS_POLICIES };

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TypeError(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give a PEM file; \`ferry cert --self-signed --host NAME\` makes one.`);
  }
}

/** The certificate files named by the flags, read now. */
export function readTlsCredentials(flags: TlsFlags): TlsCredentials | undefined {
  if (!flags.tlsCert && !flags.tlsKey) {
    if (flags.tlsCa || flags.tlsImplicitPort !== undefined || flags.tlsPolicy) throw new TypeError('--tls-ca, --tls-implicit-port and --tls-policy need --tls-cert and --tls-key.');
    return undefined;
  }
  if (!flags.tlsCert || !flags.tlsKey) throw new TypeError('--tls-cert and --tls-key go together: give the certificate chain and its private key.');
  return {
    cert: readPem('--tls-cert', flags.tlsCert),
    key: readPem('--tls-key', flags.tlsKey),
    ca: flags.tlsCa ? readPem('--tls-ca', flags.tlsCa) : undefined,
  };
}

/** FtpServerOptions.tls from the flags, or undefined without --tls-cert. */
export function tlsOptionsFromFlags(flags: TlsFlags): TlsOptions | undefined {
  const credentials = readTlsCredentials(flags);
  if (!credentials) return undefined;
  return { ...credentials, implicitPort: flags.tlsImplicitPort, policy: flags.tlsPolicy };
}

/** SIGHUP: read the files again and replace the certificate for new handshakes; keep the old one on any error. */
export function reloadTlsFromFlags(server: FtpServer, flags: TlsFlags, logger: Logger): void {
  if (!server.tls) {
    logger.info('SIGHUP: nothing to reload without --tls-cert');
    return;
  }
  try {
    server.reloadTls(readTlsCredentials(flags)!);
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'SIGHUP: TLS certificate not reloaded; keeping the current one');
  }
}
