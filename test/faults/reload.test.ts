/**
 * Faults at reload: SIGHUP with a configuration file that does not parse,
 * then with a garbage certificate, while an FTPS upload and download run.
 * The transfers complete with the right SHA-256, the log says what is
 * wrong, and the configuration and certificate in force stay.
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { Client } from 'basic-ftp';
import { createSelfSignedCertificate } from '../../src/tls/self-signed.js';
import { startCli, type RunningCli } from '../helpers/cli.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { sha256, tempFiles, waitFor } from './fault-helpers.js';

/** SIGHUP, then wait for the `count`-th reload outcome in the log. */
async function reload(cli: RunningCli, count: number): Promise<string> {
  cli.child.kill('SIGHUP');
  const outcomes = () => cli.output().split('\n').filter((l) => /configuration reloaded|reload failed/.test(l));
  await waitFor(() => outcomes().length >= count, `reload ${count}`);
  return outcomes()[count - 1]!;
}

/** The certificate a fresh FTPS connection is shown, and the greeting it got. */
async function freshConnection(port: number): Promise<{ fingerprint: string; greeting: string }> {
  const client = await RawClient.connect(port);
  try {
    const greeting = (await client.expect(220)).text;
    await client.command('AUTH TLS', 234);
    const secure = await client.startTls();
    return { fingerprint: secure.getPeerX509Certificate()!.fingerprint256, greeting };
  } finally {
    client.close();
  }
}

test('SIGHUP with a broken config, then a garbage certificate, during FTPS transfers: they complete, the log says why, the old settings stay', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-reload-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = path.join(dir, 'files');
  await mkdir(files);
  const pair = createSelfSignedCertificate({ hosts: ['127.0.0.1'] });
  await writeFile(path.join(dir, 'cert.pem'), pair.cert);
  await writeFile(path.join(dir, 'key.pem'), pair.key);
  const good = 'host: 127.0.0.1\nport: 0\nbanner: before\nstorage:\n  type: local\n  root: files\ntls:\n  cert: cert.pem\n  key: key.pem\nlogging:\n  level: info\n';
  const config = path.join(dir, 'ferry.yaml');
  await writeFile(config, good);
  const download = randomBytes(32 * 1024 * 1024);
  await writeFile(path.join(files, 'big.bin'), download);
  const cli = await startCli(t, ['serve', '--config', 'ferry.yaml', '--user', 'u:pw', '--write'], dir);
  const original = new X509Certificate(pair.cert).fingerprint256;
  assert.equal((await freshConnection(cli.port)).fingerprint, original);

  const connect = async () => {
    const client = new Client(20_000);
    t.after(() => client.close());
    await client.access({ host: '127.0.0.1', port: cli.port, user: 'u', password: 'pw', secure: true, secureOptions: { rejectUnauthorized: false } });
    return client;
  };
  // An upload fed by hand, and a download whose sink holds it after the first chunk.
  const upload = randomBytes(4 * 1024 * 1024);
  const source = new PassThrough();
  const uploading = (await connect()).uploadFrom(source, 'up.bin');
  source.write(upload.subarray(0, 1024 * 1024));
  const received: Buffer[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      received.push(chunk);
      if (received.length === 1) void gate.then(() => done());
      else done();
    },
  });
  const downloading = (await connect()).downloadTo(sink, 'big.bin');
  await waitFor(async () => received.length > 0 && (await tempFiles(files)).length > 0, 'both transfers to be under way');

  await writeFile(config, good.replace('banner: before', 'banner: [unclosed'));
  const broken = await reload(cli, 1);
  assert.match(broken, /reload failed; the previous configuration stays in force/);
  assert.match(broken, /ferry\.yaml/, 'the log names the file');
  t.diagnostic(broken);

  await writeFile(config, good.replace('banner: before', 'banner: after'));
  await writeFile(path.join(dir, 'cert.pem'), 'garbage, not a PEM certificate\n');
  const garbage = await reload(cli, 2);
  assert.match(garbage, /reload failed; the previous configuration stays in force/);
  assert.match(garbage, /tls\.cert/, 'the log names the certificate setting');
  t.diagnostic(garbage);

  const fresh = await freshConnection(cli.port);
  assert.equal(fresh.fingerprint, original, 'the old certificate stays in force');
  assert.equal(fresh.greeting, 'before', 'and the old configuration');

  source.end(upload.subarray(1024 * 1024));
  release();
  await Promise.all([uploading, downloading]);
  assert.equal(sha256(await readFile(path.join(files, 'up.bin'))), sha256(upload));
  assert.equal(sha256(Buffer.concat(received)), sha256(download));
  assert.equal(cli.child.exitCode, null, 'still running');
});
