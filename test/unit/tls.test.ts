/** Pure parts of the TLS layer: reading a session's master secret, and the self-signed certificate. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { sessionMasterKey } from '../../src/tls/session-der.js';
import { createSelfSignedCertificate } from '../../src/tls/self-signed.js';

/** SEQUENCE { INTEGER 1, INTEGER 0x0304, OCTET STRING cipher, OCTET STRING id, OCTET STRING key } */
function session(id: Buffer, key: Buffer): Buffer {
  const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag, body.length]), body]);
  const body = Buffer.concat([tlv(2, Buffer.from([1])), tlv(2, Buffer.from([3, 4])), tlv(4, Buffer.from([0x13, 0x01])), tlv(4, id), tlv(4, key)]);
  return Buffer.concat([Buffer.from([0x30, 0x81, body.length]), body]);
}

test('sessionMasterKey reads the fifth field of an SSL_SESSION, and null when it is empty', () => {
  const key = Buffer.alloc(48, 7);
  assert.deepEqual(sessionMasterKey(session(Buffer.alloc(32, 1), key)), key);
  assert.equal(sessionMasterKey(session(Buffer.alloc(0), Buffer.alloc(0))), null);
  assert.equal(sessionMasterKey(undefined), null);
});

test('sessionMasterKey never throws or reads past the end, whatever the bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const result = sessionMasterKey(Buffer.from(bytes));
      assert.ok(result === null || result.length <= bytes.length);
    }),
  );
});

test('a self-signed certificate names every host (DNS and IPv4/IPv6 addresses) and verifies with its own key', () => {
  for (let i = 0; i < 20; i++) {
    const { cert } = createSelfSignedCertificate({ hosts: ['ftp.example.com', '192.0.2.7', '2001:db8::1'], days: 30 });
    const x509 = new X509Certificate(cert);
    assert.equal(x509.subject, 'CN=ftp.example.com');
    assert.equal(x509.checkHost('ftp.example.com'), 'ftp.example.com');
    assert.equal(x509.checkIP('192.0.2.7'), '192.0.2.7');
    assert.equal(x509.checkIP('2001:db8::1'), '2001:db8::1');
    assert.equal(x509.ca, false);
    assert.ok(x509.verify(x509.publicKey));
    const days = (Date.parse(x509.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30.1, `valid for ${days} days`);
  }
});
