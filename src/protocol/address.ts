/**
 * Host and port encodings used by the data-connection commands:
 * PORT/PASV (RFC 959 §4.1.2, §4.2) and EPRT/EPSV (RFC 2428), plus address
 * normalisation so the session can check that a data connection comes from
 * (or goes to) the same host as the control connection.
 *
 * Pure: `node:net`'s `isIP` and `BlockList` are the only imports and do no
 * I/O. Parsers return `null` or an error tag for bad input and never throw
 * (but `addressList`, which checks configuration, throws a TypeError naming
 * the bad item); formatters throw on arguments only a programming error can
 * produce.
 */
import net, { isIP } from 'node:net';

// ---------------------------------------------------------------------------
// Normalisation

/** Parse a dotted quad into four octets; strict (no leading zeros, no spaces). */
function ipv4Octets(addr: string): number[] | null {
  if (isIP(addr) !== 4) return null;
  return addr.split('.').map(Number);
}

/**
 * Expand a valid IPv6 address (no zone) into its eight 16-bit groups,
 * including the embedded dotted-quad tail form (RFC 4291 §2.2, form 3).
 */
function ipv6Groups(addr: string): number[] | null {
  if (isIP(addr) !== 6) return null;
  let text = addr;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  const tailGroups: number[] = [];
  if (tail.includes('.')) {
    const octets = ipv4Octets(tail);
    if (!octets) return null;
    const [a = 0, b = 0, c = 0, d = 0] = octets;
    tailGroups.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::"; "1:2:3:4:5:6:1.2.3.4" leaves "1:2:3:4:5:6:".
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const gap = text.indexOf('::');
  let groups: number[];
  if (gap === -1) {
    groups = parse(text);
  } else {
    const head = parse(text.slice(0, gap));
    const rest = parse(text.slice(gap + 2));
    const zeros = 8 - tailGroups.length - head.length - rest.length;
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest];
  }
  groups.push(...tailGroups);
  return groups.length === 8 ? groups : null;
}

/** RFC 5952 §4 text form: lowercase, no leading zeros, longest zero run (≥ 2) as "::". */
function formatIPv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1; // §4.2.2: a single zero group is not compressed
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    // §4.2.3: the first of equally long runs wins, hence the strict '>'.
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * Canonical text form of an address, for comparison and logs.
 *
 * - IPv4 is returned unchanged.
 * - An IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2), `::ffff:1.2.3.4` in any
 *   case or spelling, becomes `1.2.3.4`: that is how a dual-stack socket
 *   reports IPv4 peers.
 * - Other IPv6 becomes the RFC 5952 form (`0:0:0:0:0:0:0:1` → `::1`); a zone
 *   (`%eth0`) is kept verbatim.
 * - Anything else (a host name) is returned unchanged.
 */
export function normalizeAddress(addr: string): string {
  if (isIP(addr) !== 6) return addr;
  const zoneAt = addr.indexOf('%');
  const base = zoneAt === -1 ? addr : addr.slice(0, zoneAt);
  const zone = zoneAt === -1 ? '' : addr.slice(zoneAt);
  const groups = ipv6Groups(base);
  if (!groups) return addr;
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = groups;
  if (zone === '' && g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) {
    return `${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`;
  }
  return formatIPv6(groups) + zone;
}

/**
 * True when both strings name the same host: `::ffff:127.0.0.1` equals
 * `127.0.0.1`, and `::1` equals `0:0:0:0:0:0:0:1`. Used for the RFC 2577 §5
 * check that data connections involve only the control connection's peer.
 */
export function sameHost(a: string, b: string): boolean {
  return normalizeAddress(a) === normalizeAddress(b);
}

// ---------------------------------------------------------------------------
// PORT / PASV (RFC 959)

/** One decimal number 0-255, 1-3 digits, spaces around it tolerated. */
function byteField(field: string): number | null {
  const t = field.trim();
  if (!/^[0-9]{1,3}$/.test(t)) return null;
  const n = Number(t);
  return n <= 255 ? n : null;
}

/**
 * Decode a PORT argument, RFC 959 §4.1.2: "h1,h2,h3,h4,p1,p2", each field
 * a decimal 0-255; the port is p1 * 256 + p2. Returns null for anything
 * malformed, including port 0, which no one can connect to.
 */
export function parsePortArgument(arg: string): { host: string; port: number } | null {
  const fields = arg.split(',');
  if (fields.length !== 6) return null;
  const bytes: number[] = [];
  for (const field of fields) {
    const n = byteField(field);
    if (n === null) return null;
    bytes.push(n);
  }
  const [h1, h2, h3, h4, p1 = 0, p2 = 0] = bytes;
  const port = p1 * 256 + p2;
  if (port === 0) return null;
  return { host: `${h1}.${h2}.${h3}.${h4}`, port };
}

function assertPort(port: number, min: number): void {
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new RangeError(`port must be an integer in ${min}..65535, got ${port}`);
  }
}

/**
 * The text of the 227 reply to PASV, RFC 959 §4.2 (reply 227):
 * "Entering Passive Mode (h1,h2,h3,h4,p1,p2)." An IPv4-mapped IPv6 host is
 * accepted and written as IPv4; any other host throws a TypeError (PASV
 * cannot express IPv6, RFC 2428 §1).
 */
export function formatPasvText(host: string, port: number): string {
  const octets = ipv4Octets(normalizeAddress(host));
  if (!octets) throw new TypeError(`PASV needs an IPv4 address, got ${JSON.stringify(host)}`);
  assertPort(port, 0);
  return `Entering Passive Mode (${octets.join(',')},${port >> 8},${port & 0xff}).`;
}

// ---------------------------------------------------------------------------
// EPRT / EPSV (RFC 2428)

export type EprtResult = { family: 1 | 2; host: string; port: number } | { error: 'syntax' | 'protocol' };

/**
 * Decode an EPRT argument, RFC 2428 §2: "<d><net-prt><d><net-addr><d><tcp-port><d>".
 * The delimiter is the first character, any of ASCII 33-126. net-prt 1 is
 * IPv4 (a dotted quad), 2 is IPv6. `{error: 'protocol'}` means a well-formed
 * but unsupported net-prt (reply 522); `{error: 'syntax'}` anything else
 * (reply 501). The host is returned normalised (see `normalizeAddress`), so
 * an IPv4-mapped address given with net-prt 2 comes back as dotted IPv4.
 */
export function parseEprtArgument(arg: string): EprtResult {
  const text = arg.trim();
  const delimiter = text.charCodeAt(0);
  if (!(delimiter >= 33 && delimiter <= 126)) return { error: 'syntax' };
  const parts = text.split(text[0] as string);
  // A leading and a trailing delimiter give empty first and last parts.
  if (parts.length !== 5 || parts[0] !== '' || parts[4] !== '') return { error: 'syntax' };
  const [, proto = '', addr = '', portText = ''] = parts;
  if (!/^[0-9]+$/.test(proto)) return { error: 'syntax' };
  // RFC 2428 §2: an unsupported protocol gets 522, so it is checked before the address.
  if (proto !== '1' && proto !== '2') return { error: 'protocol' };
  const family = proto === '1' ? 1 : 2;
  // A zone identifier means nothing to the peer, so '%' is refused (isIP would accept it).
  if (isIP(addr) !== (family === 1 ? 4 : 6) || addr.includes('%')) return { error: 'syntax' };
  if (!/^[0-9]{1,5}$/.test(portText)) return { error: 'syntax' };
  const port = Number(portText);
  if (port < 1 || port > 65535) return { error: 'syntax' };
  return { family, host: normalizeAddress(addr), port };
}

/** The text of the 229 reply to EPSV, RFC 2428 §3: "Entering Extended Passive Mode (|||port|)". */
export function formatEpsvText(port: number): string {
  assertPort(port, 1);
  return `Entering Extended Passive Mode (|||${port}|)`;
}

/**
 * Decode an EPSV argument, RFC 2428 §3: none → null, "ALL" (any case) →
 * 'all' (only EPSV from now on, §4), "1"/"2" → that protocol. Anything else is
 * reported as an unsupported protocol (reply 522, which lists the ones we have).
 */
export function parseEpsvArgument(arg: string): 'all' | 1 | 2 | null | { error: 'protocol' } {
  const text = arg.trim();
  if (text === '') return null;
  if (text.toUpperCase() === 'ALL') return 'all';
  if (text === '1') return 1;
  if (text === '2') return 2;
  return { error: 'protocol' };
}

/** A DNS host name (letters, digits, hyphens; dot-separated labels), e.g. `localhost` or `ftp.example.com`. */
export function isHostName(value: string): boolean {
  return /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(value);
}

/**
 * The per-IP limit counts IPv6 clients by their /64: one host usually owns a
 * whole /64, so counting single addresses would be no limit at all. The key
 * is the /64 in RFC 5952 form (`2001:db8:1:2::/64`, `::/64`), as logs and
 * `ferry ban list` show it; IPv4 addresses are their own key.
 */
export function limitKey(address: string): string {
  const groups = ipv6Groups(address.split('%')[0]!);
  if (!groups) return address;
  return `${formatIPv6([...groups.slice(0, 4), 0, 0, 0, 0])}/64`;
}

/** A BlockList of CIDR ranges and single addresses (IPv4 or IPv6); throws TypeError naming a bad item. */
export function addressList(items: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const item of items) {
    const [address = '', bits, extra] = item.split('/');
    const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
    const prefix = bits === undefined ? (family === 'ipv4' ? 32 : 128) : Number(bits);
    const maxPrefix = family === 'ipv4' ? 32 : 128;
    if (!family || extra !== undefined || !/^\d{1,3}$/.test(String(prefix)) || prefix > maxPrefix) {
      throw new TypeError(`"${item}" is not an IP address or CIDR range like 192.168.1.0/24 or 2001:db8::/32`);
    }
    list.addSubnet(address, prefix, family);
  }
  return list;
}

/** Whether `address` (a normalised IPv4 or IPv6 address) is in `list`; false for anything that is not an address. */
export function inList(list: net.BlockList, address: string): boolean {
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
  return family !== null && list.check(address, family);
}
