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
const INTEGER = 0x02;
const OCTET_STRING = 0x04;
/** The tags of the first five fields: a different layout is refused rather than misread. */
const LAYOUT = [INTEGER, INTEGER, OCTET_STRING, OCTET_STRING, OCTET_STRING];
const TLS13 = 0x0304;

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

/** The first five fields (version, sslVersion, cipher, sessionID, masterKey), or null if the layout is not the expected one. */
function fields(der: Buffer | undefined): Element[] | null {
  if (!der) return null;
  const outer = readElement(der, 0);
  if (!outer || outer.tag !== SEQUENCE) return null;
  const found: Element[] = [];
  let offset = outer.start;
  for (const tag of LAYOUT) {
    const element = readElement(der, offset);
    if (!element || element.end > outer.end || element.tag !== tag) return null;
    found.push(element);
    offset = element.end;
  }
  return found;
}

/** The master secret of a serialised session, or null when absent (a TLS 1.3 session before its tickets) or unreadable. */
export function sessionMasterKey(der: Buffer | undefined): Buffer | null {
  const found = fields(der);
  const key = found?.[4];
  return key && key.end > key.start ? der!.subarray(key.start, key.end) : null;
}

/** Whether a serialised session is TLS 1.3 (resumed by ticket only, never by session ID). */
export function isTls13Session(der: Buffer | undefined): boolean {
  const version = fields(der)?.[1];
  if (!version) return false;
  let value = 0;
  for (let i = version.start; i < version.end; i++) value = value * 256 + der![i]!;
  return value === TLS13;
}
