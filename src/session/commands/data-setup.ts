/**
 * Data connection setup: PASV, EPSV (passive), PORT, EPRT (active).
 * RFC 959 §4.1.2, RFC 2428.
 */
import { ActiveChannel } from '../../data/active.js';
import { NoPassivePortError, PassiveChannel } from '../../data/passive.js';
import {
  formatEpsvText,
  formatPasvText,
  parseEprtArgument,
  parseEpsvArgument,
  parsePortArgument,
  sameHost,
} from '../../protocol/address.js';
import type { CommandSpec } from '../command.js';
import type { Session } from '../session.js';

/** RFC 2428 §4: once EPSV ALL is in force, every other setup command is refused. */
function refusedByEpsvAll(session: Session): boolean {
  if (session.epsvAll) session.reply(501, 'EPSV ALL is in force; use EPSV.');
  return session.epsvAll;
}

async function openPassive(session: Session): Promise<PassiveChannel | null> {
  const { options } = session.host;
  try {
    const channel = await PassiveChannel.open(
      session.host.passivePorts,
      session.localAddress,
      session.remoteAddress,
      options.dataConnectTimeoutMs,
    );
    if (session.dataProtection === 'P') channel.prepareWith((socket, signal) => session.protectData(socket, signal));
    session.setDataChannel(channel);
    return channel;
  } catch (err) {
    if (!(err instanceof NoPassivePortError)) session.log.warn({ err }, 'passive listen failed');
    session.reply(425, 'No passive port is free right now; try again.');
    return null;
  }
}

/** The address family of the control connection, in RFC 2428 numbers. */
const family = (session: Session): 1 | 2 => (session.ipv6 ? 2 : 1);

/** Active mode only to the client's own address and an unprivileged port: no FTP bounce (RFC 2577). */
function activeTargetRefused(session: Session, host: string, port: number): boolean {
  if (!session.host.options.allowActiveMode) {
    session.reply(502, 'Active mode is disabled on this server; use PASV or EPSV.');
    return true;
  }
  if (!sameHost(host, session.remoteAddress)) {
    session.reply(501, 'Active connections go only to your own address.');
    return true;
  }
  if (port < 1024) {
    session.reply(501, 'Active connections to privileged ports are refused.');
    return true;
  }
  return false;
}

function setActive(session: Session, host: string, port: number): void {
  const timeout = session.host.options.dataConnectTimeoutMs;
  session.setDataChannel(new ActiveChannel(host, port, session.localAddress, timeout));
}

export const dataSetupCommands: CommandSpec[] = [
  {
    verb: 'PASV',
    syntax: 'PASV',
    auth: true,
    arg: 'none',
    async handler(session) {
      if (refusedByEpsvAll(session)) return;
      // The 227 reply carries an IPv4 address, and the listener is bound to
      // the control connection's local address: over IPv6 no announced
      // address could reach it, whatever masqueradeAddress says.
      if (session.ipv6) {
        session.reply(425, 'PASV works only over IPv4; use EPSV.');
        return;
      }
      // Before the listener opens: a slow host name lookup holds no port.
      const announce = await session.host.options.passiveAddress.announce(session.remoteAddress, session.localAddress, session.log);
      const channel = await openPassive(session);
      if (channel) session.reply(227, formatPasvText(announce, channel.port));
    },
  },
  {
    verb: 'EPSV',
    syntax: 'EPSV [<sp> 1|2|ALL]',
    auth: true,
    arg: 'optional',
    feature: () => 'EPSV',
    async handler(session, { arg }) {
      const request = parseEpsvArgument(arg);
      if (request === 'all') {
        session.epsvAll = true;
        session.reply(200, 'EPSV ALL accepted.');
        return;
      }
      if (request !== null && request !== family(session)) {
        session.reply(522, `Network protocol not supported, use (${family(session)}).`);
        return;
      }
      const channel = await openPassive(session);
      if (channel) session.reply(229, formatEpsvText(channel.port));
    },
  },
  {
    verb: 'PORT',
    syntax: 'PORT <sp> h1,h2,h3,h4,p1,p2',
    auth: true,
    arg: 'required',
    handler(session, { arg }) {
      if (refusedByEpsvAll(session)) return;
      const target = parsePortArgument(arg);
      if (!target) {
        session.reply(501, 'Syntax: PORT h1,h2,h3,h4,p1,p2');
        return;
      }
      if (activeTargetRefused(session, target.host, target.port)) return;
      setActive(session, target.host, target.port);
      session.reply(200, 'PORT command successful. Consider using PASV.');
    },
  },
  {
    verb: 'EPRT',
    syntax: 'EPRT <sp> |proto|address|port|',
    auth: true,
    arg: 'required',
    feature: () => 'EPRT',
    handler(session, { arg }) {
      if (refusedByEpsvAll(session)) return;
      const target = parseEprtArgument(arg);
      if ('error' in target) {
        if (target.error === 'protocol') session.reply(522, `Network protocol not supported, use (${family(session)}).`);
        else session.reply(501, 'Syntax: EPRT |proto|address|port|');
        return;
      }
      if (target.family !== family(session)) {
        session.reply(522, `Network protocol not supported, use (${family(session)}).`);
        return;
      }
      if (activeTargetRefused(session, target.host, target.port)) return;
      setActive(session, target.host, target.port);
      session.reply(200, 'EPRT command successful.');
    },
  },
];
