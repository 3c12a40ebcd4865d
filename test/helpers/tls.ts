/**
 * TLS fixtures: one self-signed certificate per test process (for
 * localhost, 127.0.0.1 and ::1), made with Ferry's own generator, and the
 * same pair written to a temporary folder for clients that read files.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createSelfSignedCertificate, type CertificatePair } from '../../src/tls/self-signed.js';
import type { Cleanup } from './server.js';

let pair: CertificatePair | null = null;

export function testCertificate(): CertificatePair {
  return (pair ??= createSelfSignedCertificate({ hosts: ['localhost', '127.0.0.1', '::1'] }));
}

/** The certificate and key as files (cert.pem, key.pem) in a temp folder removed after the test. */
export async function certificateFiles(t: Cleanup): Promise<{ dir: string; cert: string; key: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { cert, key } = testCertificate();
  await writeFile(path.join(dir, 'cert.pem'), cert);
  await writeFile(path.join(dir, 'key.pem'), key, { mode: 0o600 });
  return { dir, cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}
