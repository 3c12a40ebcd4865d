/**
 * readProxyHeader over real loopback sockets: a header in pieces, bytes
 * behind it, and the stop of the kernel reads the cluster handoff relies on.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { test } from 'node:test';
import { detachForHandoff, readProxyHeader } from '../../src/server/proxy-protocol.js';
import { proxyV1, proxyV2 } from '../helpers/proxy-header.js';

/** A connected pair: [client side, server side]; both destroyed after the test. */
async function pair(t: { after(fn: () => void | Promise<void>): void }): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = once(server, 'connection');
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', noDelay: true });
  const [socket] = (await accepted) as [net.Socket];
  await once(client, 'connect').catch(() => {});
  t.after(() => {
    client.destroy();
    socket.destroy();
    server.close();
  });
  client.on('error', () => {});
  socket.on('error', () => {});
  return [client, socket];
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a header arriving a few bytes at a time is read whole, and the bytes behind it come back as head', async (t) => {
  const [client, socket] = await pair(t);
  const header = proxyV2({ source: '2001:db8::7', destination: '::1', tlvs: [[0x04, Buffer.alloc(30)]] });
  const reading = readProxyHeader(socket, 5000);
  for (let i = 0; i < header.length; i += 7) {
    client.write(header.subarray(i, Math.min(i + 7, header.length)));
    await pause(5);
  }
  client.write('USER alice\r\n');
  const { header: parsed, head } = await reading;
  assert.deepEqual(parsed.source, { address: '2001:db8::7', port: 40000 });
  // The command may have arrived with the last piece of the header, or not yet.
  const rest = [head];
  socket.on('data', (d: Buffer) => rest.push(d));
  socket.resume();
  const deadline = Date.now() + 2000;
  while (Buffer.concat(rest).toString() !== 'USER alice\r\n' && Date.now() < deadline) await pause(10);
  assert.equal(Buffer.concat(rest).toString(), 'USER alice\r\n');
});

test('detachForHandoff returns what this process read and stops the kernel reads: nothing is lost in a handoff', async (t) => {
  const [client, socket] = await pair(t);
  const reading = readProxyHeader(socket, 5000);
  client.write(Buffer.concat([proxyV1('192.0.2.9', '192.0.2.1', 1234, 21), Buffer.from('AB')]));
  const { head } = await reading;
  assert.equal(head.toString(), 'AB');
  client.write('CD'); // read into the paused socket's buffer
  await pause(100);
  assert.equal(detachForHandoff(socket).toString(), 'CD');
  client.write('EF'); // stays in the kernel for whoever reads the descriptor next
  await pause(100);
  assert.equal(socket.readableLength, 0, 'no byte was read into this process after the detach');
  // The bytes wait in the kernel's receive queue for whoever reads the descriptor next (the worker).
  assert.equal(await receiveQueue(socket), 2);
});

/** Bytes in the kernel's receive queue of an IPv4 loopback socket, from /proc/net/tcp. */
async function receiveQueue(socket: net.Socket): Promise<number> {
  const hex = (port: number) => `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const table = await readFile('/proc/net/tcp', 'utf8');
  for (const line of table.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === hex(socket.localPort!) && fields[2] === hex(socket.remotePort!)) return parseInt(fields[4]!.split(':')[1]!, 16);
  }
  throw new Error('socket not found in /proc/net/tcp');
}

test('no header within the timeout rejects, saying how many bytes came', async (t) => {
  const [client, socket] = await pair(t);
  client.write('PROXY TCP4 ');
  const started = Date.now();
  await assert.rejects(readProxyHeader(socket, 200), /within 200 ms \(11 bytes received\)/);
  assert.ok(Date.now() - started >= 190);
});

test('an invalid header rejects at once with the parser\'s reason; a close before any byte says so', async (t) => {
  const [client, socket] = await pair(t);
  client.write('SSH-2.0-OpenSSH\r\n');
  await assert.rejects(readProxyHeader(socket, 5000), /not a PROXY protocol header/);
  const [quiet, other] = await pair(t);
  const reading = readProxyHeader(other, 5000);
  quiet.end();
  await assert.rejects(reading, (err: Error & { closedEmpty?: boolean }) => err.closedEmpty === true && /after 0 bytes/.test(err.message));
});
