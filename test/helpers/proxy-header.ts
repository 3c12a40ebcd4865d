/**
 * PROXY protocol headers built by hand, byte by byte from HAProxy's
 * proxy-protocol.txt, for the parser's unit tests and for raw sockets that
 * play the load balancer in integration tests.
 */
import net from 'node:net';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** "PROXY TCP4|TCP6 src dst sport dport\r\n", the family from the source address. */
export function proxyV1(source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  const family = net.isIPv4(source) ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${family} ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`, 'ascii');
}

export interface V2Options {
  /** 0 LOCAL, 1 PROXY (default); anything else to test refusals. */
  command?: number;
  /** The version nibble (default 2). */
  version?: number;
  /** The family/protocol byte; default from the source address (0x11 or 0x21). */
  familyByte?: number;
  source?: string;
  destination?: string;
  sourcePort?: number;
  destinationPort?: number;
  /** TLVs appended after the addresses: [type, value]. */
  tlvs?: Array<[number, Buffer]>;
  /** Raw bytes after the 16 fixed ones instead of addresses and TLVs. */
  body?: Buffer;
  /** Override the length field (default: the body's real length). */
  length?: number;
}

export function proxyV2(options: V2Options = {}): Buffer {
  const { command = 1, version = 2, source = '203.0.113.7', destination = '198.51.100.1', sourcePort = 40000, destinationPort = 21 } = options;
  let body = options.body;
  let familyByte = options.familyByte;
  if (!body) {
    const v4 = net.isIPv4(source);
    familyByte ??= v4 ? 0x11 : 0x21;
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(sourcePort, 0);
    ports.writeUInt16BE(destinationPort, 2);
    const tlvs = (options.tlvs ?? []).map(([type, value]) => {
      const head = Buffer.alloc(3);
      head[0] = type;
      head.writeUInt16BE(value.length, 1);
      return Buffer.concat([head, value]);
    });
    body = Buffer.concat([addressBytes(source), addressBytes(destination), ports, ...tlvs]);
  }
  const fixed = Buffer.alloc(4);
  fixed[0] = (version << 4) | command;
  fixed[1] = familyByte ?? 0x11;
  fixed.writeUInt16BE(options.length ?? body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

function addressBytes(address: string): Buffer {
  if (net.isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  const [head = '', tail = ''] = address.includes('::') ? address.split('::') : [address, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
