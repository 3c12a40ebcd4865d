/** Measuring bandwidth limits: what a rate should take, and curl's own timing of a download. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { leaseBytes } from '../../src/limits/token-bucket.js';

/** The time `bytes` take at `rate`: the first lease goes at once (a new bucket holds one), the rest at the rate. */
export function expectedSeconds(bytes: number, rate: number): number {
  return (bytes - leaseBytes(rate)) / rate;
}

/** Fail unless `seconds` is within 5 % of what `bytes` at `rate` take; the figures go to the test's report. */
export function assertRate(t: { diagnostic(message: string): void }, what: string, bytes: number, rate: number, seconds: number): void {
  const expected = expectedSeconds(bytes, rate);
  const error = (seconds - expected) / expected;
  const figures = `${what}: ${bytes} B at ${rate} B/s took ${seconds.toFixed(2)} s, expected ${expected.toFixed(2)} s (${error >= 0 ? '+' : ''}${(error * 100).toFixed(1)} %)`;
  t.diagnostic(figures);
  assert.ok(Math.abs(error) <= 0.05, figures);
}

/**
 * curl's own measure of a download: from the moment it is about to start the
 * transfer (`time_pretransfer`, after the login, whose scrypt check takes up
 * to a second on a busy machine) to the end (`time_total`). Bounded.
 */
export function curlDownload(url: string, maxSeconds: number): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      '/usr/bin/curl',
      ['-sS', '--max-time', String(maxSeconds), '-o', '/dev/null', '-w', '%{size_download} %{time_pretransfer} %{time_total}', url],
      { timeout: (maxSeconds + 5) * 1000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`curl failed: ${err.message} ${stderr}`));
        const [bytes, pretransfer, total] = stdout.trim().split(' ').map(Number);
        resolve({ bytes: bytes!, seconds: total! - pretransfer! });
      },
    );
  });
}
