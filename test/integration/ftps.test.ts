/**
 * FTPS (RFC 4217, issue 5) with basic-ftp and with a raw client that drives
 * the TLS layer by hand: explicit and implicit TLS, PROT P and PROT C, the
 * session-reuse check on data connections, the TLS policies, certificate
 * reload, and the plaintext-injection guard on AUTH TLS.
 */
import assert from 'node:assert/strict';
import { constants, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import tls from 'node:tls';
import { Client, FTPError } from 'basic-ftp';
import { pino } from 'pino';
import { AnonymousAuthenticator, LocalStorage, createServer, type Authenticator, type TlsPolicy } from '../../src/index.js';
import { createSelfSignedCertificate } from '../../src/tls/self-signed.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { collector } from '../helpers/streams.js';
import { PASSWORD, USER, startServer, type Cleanup, type TestServer, type TestServerOptions } from '../helpers/server.js';
import { testCertificate } from '../helpers/tls.js';

const { cert, key } = testCertificate();

function startTlsServer(t: Cleanup, tlsOptions: Partial<NonNullable<TestServerOptions['tls']>> = {}, rest: TestServerOptions = {}): Promise<TestServer> {
  const logger = process.env.DEBUG_TLS ? pino({ level: 'debug' }, pino.destination(2)) : undefined;
  return startServer(t, { ...rest, logger, tls: { cert, key, ...tlsOptions } });
}

/** basic-ftp trusting the test certificate (its SAN has 127.0.0.1). */
async function connect(t: Cleanup, port: number, secure: true | 'implicit', user = USER, password = PASSWORD): Promise<Client> {
  const client = new Client(10_000);
  t.after(async () => client.close());
  await client.access({ host: '127.0.0.1', port, user, password, secure, secureOptions: { ca: cert } });
  return client;
}

/** RETR over an already secured raw client; resolves to the data and the final reply code. */
async function retrieve(client: RawClient, data: net.Socket, name: string): Promise<{ body: Buffer; code: number }> {
  client.send(`RETR ${name}`);
  await client.expect(150);
  const body = await readToClose(data);
  return { body, code: (await client.read()).code };
}

describe('FTPS with basic-ftp', () => {
  for (const mode of [true, 'implicit'] as const) {
    test(`${mode === true ? 'explicit (AUTH TLS)' : 'implicit'} TLS: upload, list, download and resume are encrypted and resume the control session`, async (t) => {
      const srv = await startTlsServer(t, { implicitPort: 0 });
      const port = mode === true ? srv.port : srv.server.implicitAddress()!.port;
      const client = await connect(t, port, mode);
      assert.ok(client.ftp.socket instanceof tls.TLSSocket, 'control connection is TLS');
      const content = Buffer.alloc(300_000);
      for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 0xff;
      await client.uploadFrom(Readable.from([content]), 'big.bin');
      assert.deepEqual(await readFile(path.join(srv.root, 'big.bin')), content);
      const list = await client.list();
      assert.deepEqual(list.map((f) => [f.name, f.size]), [['big.bin', content.length]]);
      const whole = collector();
      await client.downloadTo(whole.sink, 'big.bin');
      assert.deepEqual(whole.bytes(), content);
      const tail = collector();
      await client.downloadTo(tail.sink, 'big.bin', 100_000);
      assert.deepEqual(tail.bytes(), content.subarray(100_000));
      await client.appendFrom(Readable.from([Buffer.from('more')]), 'big.bin');
      assert.equal((await readFile(path.join(srv.root, 'big.bin'))).length, content.length + 4);
    });
  }

  test('FEAT lists AUTH TLS, PBSZ and PROT only when the server has a certificate; AUTH without one is 502', async (t) => {
    const withTls = await startTlsServer(t);
    const plain = await startServer(t);
    const a = await RawClient.connect(withTls.port);
    const b = await RawClient.connect(plain.port);
    t.after(() => (a.close(), b.close()));
    await a.expect(220);
    await b.expect(220);
    const feat = (await a.command('FEAT', 211)).lines;
    for (const line of [' AUTH TLS', ' PBSZ', ' PROT']) assert.ok(feat.includes(line), `FEAT has ${line}: ${feat.join('|')}`);
    const plainFeat = (await b.command('FEAT', 211)).lines.join('\n');
    assert.doesNotMatch(plainFeat, /AUTH|PBSZ|PROT/);
    await b.command('AUTH TLS', 502);
  });

  test('PBSZ and PROT before AUTH are 503; CCC is refused with 534; PROT S/E are 536; unknown AUTH mechanisms 504', async (t) => {
    const srv = await startTlsServer(t);
    const client = await RawClient.connect(srv.port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command('PBSZ 0', 503);
    await client.command('PROT P', 503);
    await client.command('AUTH KERBEROS_V4', 504);
    await client.command('AUTH TLS', 234);
    await client.startTls();
    await client.command('PBSZ 0', 200);
    await client.command('PROT S', 536);
    await client.command('PROT E', 536);
    await client.command('PROT X', 504);
    await client.command('CCC', 534);
    await client.command('AUTH TLS', 503);
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
  });

  test('commands pipelined in the clear after AUTH TLS are discarded, not run over TLS (CVE-2011-0411)', async (t) => {
    const srv = await startTlsServer(t, { policy: 'optional' });
    const client = await RawClient.connect(srv.port);
    t.after(() => client.close());
    await client.expect(220);
    client.write(`AUTH TLS\r\nUSER ${USER}\r\nPASS ${PASSWORD}\r\nMKD injected\r\nNOO`);
    await client.expect(234);
    await client.startTls();
    // Had the injected USER run, PASS would now log in; it must ask for USER first.
    await client.command(`PASS ${PASSWORD}`, 503);
    await client.command('NOOP', 200);
  });

  test('client-initiated renegotiation is refused (a full handshake per request would be free for the client), and the server serves on', async (t) => {
    const srv = await startTlsServer(t, { implicitPort: 0, policy: 'optional' });
    const socket = tls.connect({ port: srv.server.implicitAddress()!.port, host: '127.0.0.1', ca: cert, maxVersion: 'TLSv1.2' });
    t.after(() => void socket.destroy());
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    const outcome = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('no answer'), 2000);
      socket.once('close', () => (clearTimeout(timer), resolve('closed')));
      socket.renegotiate({}, (err) => (clearTimeout(timer), resolve(err ? 'failed' : 'renegotiated')));
    });
    // The server answers a no_renegotiation alert (OpenSSL's client may report it, close, or just wait).
    assert.notEqual(outcome, 'renegotiated');
    const other = await connect(t, srv.port, true);
    assert.ok(await other.pwd(), 'the server goes on serving others');
  });

  test('a client that stays at PROT C after AUTH TLS gets plain data', async (t) => {
    const srv = await startTlsServer(t);
    await writeFile(path.join(srv.root, 'f.txt'), 'plain data');
    const client = await RawClient.connect(srv.port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command('AUTH TLS', 234);
    await client.startTls();
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    await client.command('PBSZ 0', 200);
    await client.command('PROT C', 200);
    const data = await client.passive();
    const { body, code } = await retrieve(client, data, 'f.txt');
    assert.equal(code, 226);
    assert.equal(body.toString(), 'plain data');
  });
});

describe('requireSessionReuse', () => {
  async function securedClient(srv: TestServer, options: tls.ConnectionOptions = {}): Promise<{ client: RawClient; control: tls.TLSSocket; session: Buffer }> {
    await writeFile(path.join(srv.root, 'f.txt'), 'secret data');
    const client = await RawClient.connect(srv.port);
    await client.expect(220);
    await client.command('AUTH TLS', 234);
    const control = await client.startTls({ ca: cert, servername: 'localhost', ...options });
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    await client.command('PBSZ 0', 200);
    await client.command('PROT P', 200);
    // TLS 1.3 tickets arrive after the handshake; the NOOPs above flushed them.
    const session = control.getSession();
    assert.ok(session, 'the client holds a session to resume');
    return { client, control, session };
  }

  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    test(`${maxVersion}: a data connection that resumes the control session is accepted; one that does not is refused with 522`, async (t) => {
      const srv = await startTlsServer(t);
      const { client, session, control } = await securedClient(srv, { maxVersion });
      t.after(() => client.close());
      assert.equal(control.getProtocol(), maxVersion);
      const resumed = await client.passiveTls({ session, maxVersion });
      await secured(resumed);
      assert.equal(resumed.isSessionReused(), true);
      const ok = await retrieve(client, resumed, 'f.txt');
      assert.equal(ok.code, 226);
      assert.equal(ok.body.toString(), 'secret data');

      const fresh = await client.passiveTls({ maxVersion });
      const refused = await retrieve(client, fresh, 'f.txt');
      assert.equal(refused.code, 522);
      assert.equal(refused.body.length, 0);
    });
  }

  test('TLS 1.2 without tickets: session-ID resumption through the shared cache is accepted', async (t) => {
    const srv = await startTlsServer(t);
    const noTickets = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;
    const { client, control } = await securedClient(srv, noTickets);
    t.after(() => client.close());
    const data = await client.passiveTls({ ...noTickets, session: control.getSession()! });
    await secured(data);
    assert.equal(data.isSessionReused(), true);
    assert.equal((await retrieve(client, data, 'f.txt')).code, 226);
  });

  test("a data connection that resumes another client's session is refused: reuse means this control session", async (t) => {
    const srv = await startTlsServer(t);
    const a = await securedClient(srv);
    const b = await securedClient(srv);
    t.after(() => (a.client.close(), b.client.close()));
    const stolen = await a.client.passiveTls({ session: b.session });
    await secured(stolen);
    assert.equal(stolen.isSessionReused(), true, 'the TLS layer did resume');
    assert.equal((await retrieve(a.client, stolen, 'f.txt')).code, 522);
  });

  test('active mode (EPRT) under PROT P: Ferry dials the client and is still the TLS server; the session must resume', async (t) => {
    const srv = await startTlsServer(t);
    const { client, session } = await securedClient(srv);
    t.after(() => client.close());
    for (const resume of [true, false]) {
      const listener = net.createServer();
      t.after(() => listener.close());
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
      const accepted = new Promise<tls.TLSSocket>((resolve) =>
        listener.once('connection', (raw) => {
          const secure = tls.connect({ socket: raw, rejectUnauthorized: false, ...(resume ? { session } : {}) });
          secure.on('error', () => {});
          resolve(secure);
        }),
      );
      await client.command(`EPRT |1|127.0.0.1|${(listener.address() as net.AddressInfo).port}|`, 200);
      client.send('RETR f.txt');
      await client.expect(150);
      const body = await readToClose(await accepted);
      const code = (await client.read()).code;
      if (resume) assert.deepEqual([code, body.toString()], [226, 'secret data']);
      else assert.equal(code, 522);
    }
  });

  test('with requireSessionReuse off, a data connection that does not resume is accepted', async (t) => {
    const srv = await startTlsServer(t, { requireSessionReuse: false });
    const { client } = await securedClient(srv);
    t.after(() => client.close());
    const fresh = await client.passiveTls();
    const result = await retrieve(client, fresh, 'f.txt');
    assert.equal(result.code, 226);
    assert.equal(result.body.toString(), 'secret data');
  });

  test('reloadTls serves the new certificate to new connections while old sessions keep resuming', async (t) => {
    const srv = await startTlsServer(t);
    const before = await securedClient(srv);
    t.after(() => before.client.close());
    const next = createSelfSignedCertificate({ hosts: ['127.0.0.1', 'reloaded.example'] });
    assert.throws(() => srv.server.reloadTls({ cert: next.cert, key: key }), /tls\.cert\/tls\.key/);
    srv.server.reloadTls({ cert: next.cert, key: next.key });
    const resumed = await before.client.passiveTls({ session: before.session });
    await secured(resumed);
    assert.equal((await retrieve(before.client, resumed, 'f.txt')).code, 226);
    const after = await RawClient.connect(srv.port);
    t.after(() => after.close());
    await after.expect(220);
    await after.command('AUTH TLS', 234);
    const control = await after.startTls();
    assert.match(control.getPeerX509Certificate()!.subjectAltName!, /reloaded\.example/);
  });
});

test('reconfigure (a SIGHUP reload) replaces the certificate and policies now; TLS on/off and implicitPort wait for a restart', async (t) => {
  const srv = await startTlsServer(t, { policy: 'optional' });
  const { authenticator } = srv.server.options;
  const next = createSelfSignedCertificate({ hosts: ['127.0.0.1', 'reconfigured.example'] });
  assert.deepEqual(srv.server.reconfigure({ authenticator, host: '127.0.0.1', port: 0, tls: { cert: next.cert, key: next.key, policy: 'login' } }), []);
  const client = await RawClient.connect(srv.port);
  t.after(() => client.close());
  await client.expect(220);
  await client.command(`USER ${USER}`, 530);
  await client.command('AUTH TLS', 234);
  assert.match((await client.startTls()).getPeerX509Certificate()!.subjectAltName!, /reconfigured\.example/);
  assert.deepEqual(srv.server.reconfigure({ authenticator, host: '127.0.0.1', port: 0, tls: { cert, key, implicitPort: 0 } }), ['tls']);
  assert.equal(srv.server.implicitAddress(), null);
  assert.deepEqual(srv.server.reconfigure({ authenticator, host: '127.0.0.1', port: 0 }), ['tls']);
  assert.ok(srv.server.options.tls, 'TLS stays on until a restart');
});

describe('TLS policies', () => {
  test("policy 'login' (the default): USER in the clear is refused with 530, PASS never checked; anonymous is exempt", async (t) => {
    const srv = await startTlsServer(t, {}, { anonymous: true });
    const client = await RawClient.connect(srv.port);
    t.after(() => client.close());
    await client.expect(220);
    const refused = await client.command(`USER ${USER}`, 530);
    assert.match(refused.text, /AUTH TLS/);
    await client.command(`PASS ${PASSWORD}`, 503);
    await client.command('USER anonymous', 331);
    await client.command('PASS guest@', 230);
    await assert.rejects(
      () => connectPlain(srv.port),
      (err: unknown) => err instanceof FTPError && err.code === 530,
    );
    await connect(t, srv.port, true);
  });

  test("policy 'data': transfers at PROT C are refused with 521, PROT P works; anonymousExempt false holds anonymous too", async (t) => {
    const srv = await startTlsServer(t, { policy: 'data', anonymousExempt: false }, { anonymous: true });
    await writeFile(path.join(srv.root, 'f.txt'), 'x');
    const client = await RawClient.connect(srv.port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command('USER anonymous', 530);
    await client.command('AUTH TLS', 234);
    await client.startTls();
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    await client.passive();
    await client.command('RETR f.txt', 521);
    await client.command('PROT P', 200);
    const data = await client.passiveTls({ session: (client.socket as tls.TLSSocket).getSession()! });
    assert.equal((await retrieve(client, data, 'f.txt')).code, 226);
  });

  test("policy 'optional': plain FTP logins still work next to FTPS", async (t) => {
    const srv = await startTlsServer(t, { policy: 'optional' });
    const client = await RawClient.login(srv.port, USER, PASSWORD);
    client.close();
  });

  test("the authenticator's tlsPolicy hook decides per user, over the server's policy", async (t) => {
    const root = (await startServer(t)).root;
    const storage = new LocalStorage(root);
    const policies: Record<string, TlsPolicy> = { camera: 'optional', admin: 'login' };
    const authenticator: Authenticator = {
      async authenticate({ username }) {
        return username in policies ? { username, storage, permissions: 'elr' } : null;
      },
      tlsPolicy: (username) => policies[username],
    };
    const server = createServer({ authenticator, host: '127.0.0.1', port: 0, tls: { cert, key, policy: 'optional' } });
    t.after(() => server.close(0));
    const { port } = await server.listen();
    const client = await RawClient.connect(port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command('USER admin', 530);
    await client.command('USER camera', 331);
    await client.command('PASS any', 230);
    // A per-user requirement on a server without TLS: that user cannot log in at all.
    const noTls = createServer({ authenticator, host: '127.0.0.1', port: 0 });
    t.after(() => noTls.close(0));
    const other = await RawClient.connect((await noTls.listen()).port);
    t.after(() => other.close());
    await other.expect(220);
    await other.command('USER admin', 530);
  });

  test('requestClientCert: a client certificate that verifies reaches the authenticator, which may map it to a user', async (t) => {
    const device = createSelfSignedCertificate({ hosts: ['camera-17'] });
    const stranger = createSelfSignedCertificate({ hosts: ['camera-17'] });
    const pinned = new X509Certificate(device.cert).fingerprint256;
    const root = (await startServer(t)).root;
    const seen: Array<string | undefined> = [];
    const authenticator: Authenticator = {
      async authenticate({ username, clientCertificate }) {
        seen.push(clientCertificate?.subject);
        // Certificate login: the pinned certificate is the credential, the password is not checked.
        return username === 'camera' && clientCertificate?.fingerprint256 === pinned ? { username, storage: new LocalStorage(root), permissions: 'elr' } : null;
      },
    };
    const server = createServer({ authenticator, host: '127.0.0.1', port: 0, loginFailureDelayMs: 0, tls: { cert, key, ca: [device.cert], requestClientCert: true } });
    t.after(() => server.close(0));
    const { port } = await server.listen();
    for (const [who, options, code] of [
      ['device', { cert: device.cert, key: device.key }, 230],
      ['stranger', { cert: stranger.cert, key: stranger.key }, 530],
      ['nobody', {}, 530],
    ] as const) {
      const client = await RawClient.connect(port);
      t.after(() => client.close());
      await client.expect(220);
      await client.command('AUTH TLS', 234);
      await client.startTls(options);
      await client.command('USER camera', 331);
      assert.equal((await client.command('PASS -')).code, code, who);
    }
    assert.deepEqual(seen, ['CN=camera-17', undefined, undefined]);
  });

  test('options are validated with errors that name the option', () => {
    const authenticator = new AnonymousAuthenticator({ storage: new LocalStorage('.') });
    const bad: Array<[object, RegExp]> = [
      [{ cert, key, policy: 'always' }, /tls\.policy/],
      [{ cert: '', key }, /tls\.cert/],
      [{ cert, key: 'not a key' }, /tls\.cert\/tls\.key/],
      [{ cert, key, minVersion: 'TLSv1.1' }, /tls\.minVersion/],
      [{ cert, key, implicitPort: 70000 }, /tls\.implicitPort/],
      [{ cert, key, implicitPort: 2121 }, /tls\.implicitPort/],
      [{ cert, key, requireSessionReuse: 'yes' }, /tls\.requireSessionReuse/],
    ];
    for (const [options, message] of bad) {
      assert.throws(() => createServer({ authenticator, tls: options as never }), (err: unknown) => err instanceof TypeError && message.test(err.message));
    }
  });
});

/** Everything a data socket receives until it closes, however it closes (a refused one is cut), bounded. */
async function readToClose(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (!socket.destroyed) {
    const timer = setTimeout(() => socket.destroy(), 5000);
    await new Promise((resolve) => socket.once('close', resolve)); // not once(): a refused handshake also emits 'error'
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}

/** The client side of a data connection's handshake, bounded. */
async function secured(socket: tls.TLSSocket): Promise<void> {
  const timer = setTimeout(() => socket.destroy(new Error('no TLS handshake within 5 s')), 5000);
  try {
    await Promise.race([once(socket, 'secureConnect'), once(socket, 'close').then(() => Promise.reject(new Error('closed before the handshake completed')))]);
  } finally {
    clearTimeout(timer);
  }
}

async function connectPlain(port: number): Promise<void> {
  const client = new Client(5000);
  try {
    await client.access({ host: '127.0.0.1', port, user: USER, password: PASSWORD });
  } finally {
    client.close();
  }
}
