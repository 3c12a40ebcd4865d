/**
 * Reads the master secret out of an OpenSSL session as Node serialises it
 * (`tlsSocket.getSession()`: DER of the ASN.1 `SSL_SESSION`).
 *
 * Why: Node tells a server whether a connection resumed a session
 * (`isSessionReused()`), but not *which* one. The master secret does: a TLS
 * 1.2 resumption (session ID or ticket) carries the original session's
 * master secret, and a TLS 1.3 resumption's session holds the PSK of the
 * ticket it used, which is the master secret of the session the server
 * issued with that ticket (the one a `newSession` callback receives).
 *
 * The layout (OpenSSL `ssl/ssl_asn1.c`):
 *   SSL_SESSION ::= SEQUENCE { version INTEGER, sslVersion INTEGER,
 *     cipher OCTET STRING, sessionID OCTET STRING, masterKey OCTET STRING, ... }
 */

const SEQUENCE = 0x30;
const OCTET_STRING = 0x04;

interface Element {
  tag: number;
  start: number;
  end: number;
}

function readElement(der: Buffer, offset: number): Element | null {
  if (offset + 2 > der.length) return null;
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > der.length) return null;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  const end = start + length;
  return end <= der.length ? { tag, start, end } : null;
}

/** The master secret of a serialised session, or null when absent (a TLS 1.3 session before its tickets) or unreadable. */
export function sessionMasterKey(der: Buffer | undefined): Buffer | null {
  if (!der) return null;
  const outer = readElement(der, 0);
  if (!outer || outer.tag !== SEQUENCE) return null;
  let offset = outer.start;
  // version, sslVersion, cipher, sessionID, then masterKey.
  for (let index = 0; index < 5; index++) {
    const element = readElement(der, offset);
    if (!element || element.end > outer.end) return null;
    if (index === 4) {
      if (element.tag !== OCTET_STRING || element.end === element.start) return null;
      return der.subarray(element.start, element.end);
    }
    offset = element.end;
  }
  return null;
}
