/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2):
 * the block a load balancer writes at the start of a connection to say who
 * the client really is. Pure: it is handed the bytes read so far and says
 * whether they hold a complete header, need more, or can never be one.
 *
 * Strict, as the spec asks (§2.1: "Any sequence which does not exactly match
 * the protocol must be discarded"): a receiver that guessed would let a client
 * pick its own address. Both versions are bounded: a v1 line is at most 107
 * bytes with its CRLF (§2.1), a v2 header at most PROXY_V2_MAX_BYTES (its
 * length field alone would allow 64 KiB).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { normalizeAddress } from './address.js';

/** §2.1: the longest v1 line, "PROXY UNKNOWN <ipv6> <ipv6> 65535 65535\r\n". */
export const PROXY_V1_MAX_BYTES = 107;
/**
 * The largest v2 header accepted, TLVs included. The spec fits addresses in
 * 232 bytes; balancers add a few TLVs (AWS NLB its endpoint id, HAProxy SSL
 * details, a unique id of at most 128 bytes), far below this.
 */
export const PROXY_V2_MAX_BYTES = 4096;

/** §2.2: the 12 bytes every v2 header starts with. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'ascii');
const V2_FIXED_BYTES = 16;

export interface ProxyEndpoint {
  /** Canonical text form (normalizeAddress): IPv4-mapped IPv6 becomes IPv4. */
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /**
   * The client's side of the proxied connection, or null when the connection's
   * own endpoints stand: a v2 LOCAL header (the balancer's own health check),
   * v1 UNKNOWN, or a v2 family other than TCP over IPv4/IPv6 (§2.2: a receiver
   * falls back to the real endpoints for combinations it does not support).
   */
  source: ProxyEndpoint | null;
  /** The address and port the client connected to (the balancer's), when `source` is set. */
  destination: ProxyEndpoint | null;
}

export type ProxyHeaderParse =
  /** Every byte so far fits a header that has not ended yet: read more (the bounds above still hold). */
  | { kind: 'more' }
  /** A complete header of `length` bytes; what follows it is the client's own data. */
  | { kind: 'header'; header: ProxyHeader; length: number }
  /** Not a PROXY protocol header, or a broken one: the connection must be dropped (§2.1). */
  | { kind: 'invalid'; reason: string };

const MORE: ProxyHeaderParse = { kind: 'more' };
const invalid = (reason: string): ProxyHeaderParse => ({ kind: 'invalid', reason });

/** Parse the start of a connection's bytes; never throws. */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeaderParse {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // §2.2: the first bytes decide the version; a prefix of either still may become one.
  if (startsWithPrefixOf(data, V2_SIGNATURE)) return data.length < V2_SIGNATURE.length ? MORE : parseV2(data);
  if (startsWithPrefixOf(data, V1_PREFIX)) return data.length < V1_PREFIX.length ? MORE : parseV1(data);
  return invalid('not a PROXY protocol header');
}

/** Whether `data` and `prefix` agree on their common length. */
function startsWithPrefixOf(data: Buffer, prefix: Buffer): boolean {
  const n = Math.min(data.length, prefix.length);
  return data.subarray(0, n).equals(prefix.subarray(0, n));
}

// ---------------------------------------------------------------------------
// Version 1 (§2.1): "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n"

const DECIMAL_PORT = /^(0|[1-9][0-9]{0,4})$/;

function parseV1(data: Buffer): ProxyHeaderParse {
  const lf = data.indexOf(0x0a);
  if (lf === -1) {
    return data.length >= PROXY_V1_MAX_BYTES ? invalid(`v1 header has no CRLF within ${PROXY_V1_MAX_BYTES} bytes`) : MORE;
  }
  const length = lf + 1;
  if (length > PROXY_V1_MAX_BYTES) return invalid(`v1 header longer than ${PROXY_V1_MAX_BYTES} bytes`);
  // §2.1: "The receiver must not tolerate a single CR or LF character to end the line".
  if (lf === 0 || data[lf - 1] !== 0x0d) return invalid('v1 header ends without CRLF');
  const line = data.subarray(0, lf - 1);
  for (const byte of line) {
    if (byte < 0x20 || byte > 0x7e) return invalid('v1 header holds a byte that is not printable US-ASCII');
  }
  const fields = line.toString('ascii').split(' ');
  // §2.1: for UNKNOWN "the receiver must ignore anything presented before the CRLF".
  if (fields[1] === 'UNKNOWN') return { kind: 'header', header: { version: 1, source: null, destination: null }, length };
  if (fields.length !== 6) return invalid('v1 header needs exactly: PROXY TCP4|TCP6 source destination source-port destination-port');
  const [, family, src = '', dst = '', sport = '', dport = ''] = fields;
  const isAddress = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isPlainIPv6 : null;
  if (!isAddress) return invalid(`v1 header has an unknown protocol "${family}" (TCP4, TCP6 or UNKNOWN)`);
  if (!isAddress(src) || !isAddress(dst)) return invalid(`v1 header has an address that is not ${family === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const sourcePort = v1Port(sport);
  const destinationPort = v1Port(dport);
  if (sourcePort === null || destinationPort === null) return invalid('v1 header has a port that is not a number 0-65535 without leading zeros');
  return {
    kind: 'header',
    header: {
      version: 1,
      source: { address: normalizeAddress(src), port: sourcePort },
      destination: { address: normalizeAddress(dst), port: destinationPort },
    },
    length,
  };
}

/** A zone ("%eth0") names an interface of the sender's host: meaningless here. */
const isPlainIPv6 = (text: string): boolean => isIPv6(text) && !text.includes('%');

function v1Port(text: string): number | null {
  if (!DECIMAL_PORT.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

// ---------------------------------------------------------------------------
// Version 2 (§2.2): signature, ver_cmd, fam, len (big-endian), then len bytes

const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;

function parseV2(data: Buffer): ProxyHeaderParse {
  // §2.2: the 13th byte's high nibble is the version, "the receiver must only accept" 2.
  if (data.length > 12 && data[12]! >> 4 !== 2) return invalid(`v2 header has version ${data[12]! >> 4}, not 2`);
  if (data.length < V2_FIXED_BYTES) return MORE;
  const command = data[12]! & 0x0f;
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) return invalid(`v2 header has an unassigned command ${command}`);
  const familyAndProtocol = data[13]!;
  // §2.2: families above AF_UNIX (3) and protocols above DGRAM (2) "must be rejected as invalid".
  if (familyAndProtocol >> 4 > 3 || (familyAndProtocol & 0x0f) > 2) return invalid(`v2 header has an invalid family/protocol byte 0x${familyAndProtocol.toString(16)}`);
  const length = V2_FIXED_BYTES + data.readUInt16BE(14);
  if (length > PROXY_V2_MAX_BYTES) return invalid(`v2 header of ${length} bytes is longer than the ${PROXY_V2_MAX_BYTES} accepted`);
  if (data.length < length) return MORE;
  // §2.2: LOCAL is the proxy's own connection; the family and any address are ignored.
  if (command === COMMAND_LOCAL || (familyAndProtocol !== TCP_OVER_IPV4 && familyAndProtocol !== TCP_OVER_IPV6)) {
    return { kind: 'header', header: { version: 2, source: null, destination: null }, length };
  }
  const size = familyAndProtocol === TCP_OVER_IPV4 ? 4 : 16;
  // Addresses, then ports; whatever follows up to `length` is TLVs, skipped (§2.2.x).
  if (length < V2_FIXED_BYTES + 2 * size + 4) return invalid(`v2 header's length is too short for its ${size === 4 ? 'IPv4' : 'IPv6'} addresses`);
  const at = V2_FIXED_BYTES;
  const ports = at + 2 * size;
  return {
    kind: 'header',
    header: {
      version: 2,
      source: { address: binaryAddress(data.subarray(at, at + size)), port: data.readUInt16BE(ports) },
      destination: { address: binaryAddress(data.subarray(at + size, ports)), port: data.readUInt16BE(ports + 2) },
    },
    length,
  };
}

/** Network-order address bytes (4 or 16) in canonical text form. */
function binaryAddress(bytes: Buffer): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return normalizeAddress(groups.join(':'));
}
