/**
 * FTP over TLS (RFC 4217, security extensions of RFC 2228): AUTH, PBSZ,
 * PROT, CCC. Listed in FEAT only when the server has a certificate.
 */
import type { CommandSpec } from '../command.js';
import type { Session } from '../session.js';

/** RFC 4217 §4: TLS and TLS-C are the names; SSL and TLS-P are legacy names clients still send. */
const MECHANISMS = new Set(['TLS', 'TLS-C', 'SSL', 'TLS-P']);

const withTls = (line: string) => (session: Session) => (session.host.tls ? line : null);

/** RFC 4217 §8-9: PBSZ and PROT only make sense on a TLS control connection. */
function refusedWithoutTls(session: Session): boolean {
  if (!session.secure) session.reply(503, 'Send AUTH TLS first.');
  return !session.secure;
}

export const tlsCommands: CommandSpec[] = [
  {
    verb: 'AUTH',
    syntax: 'AUTH <sp> TLS',
    auth: false,
    arg: 'required',
    feature: withTls('AUTH TLS'),
    handler(session, { arg }) {
      if (!session.host.tls) {
        session.reply(502, 'TLS is not configured on this server.');
        return;
      }
      if (!MECHANISMS.has(arg.trim().toUpperCase())) {
        session.reply(504, 'Only AUTH TLS (or SSL) is supported.');
        return;
      }
      if (session.secure) {
        session.reply(503, 'The connection is already encrypted.');
        return;
      }
      // RFC 2228 §3: a login made in the clear does not carry over; log in again over TLS.
      if (session.loggedIn || session.pendingUsername !== null) session.logout();
      session.startTls(234, 'AUTH TLS successful; starting the TLS handshake.');
    },
  },
  {
    verb: 'PBSZ',
    syntax: 'PBSZ <sp> 0',
    auth: false,
    arg: 'required',
    feature: withTls('PBSZ'),
    handler(session, { arg }) {
      if (refusedWithoutTls(session)) return;
      if (!/^\d{1,10}$/.test(arg.trim())) {
        session.reply(501, 'Syntax: PBSZ 0');
        return;
      }
      // RFC 4217 §8: TLS needs no buffer size; the answer is always 0.
      session.reply(200, 'PBSZ=0');
    },
  },
  {
    verb: 'PROT',
    syntax: 'PROT <sp> C | P',
    auth: false,
    arg: 'required',
    feature: withTls('PROT'),
    handler(session, { arg }) {
      // PBSZ should come first (RFC 4217 §9); PROT alone is accepted, as most servers do.
      if (refusedWithoutTls(session)) return;
      const level = arg.trim().toUpperCase();
      if (level === 'C' || level === 'P') {
        session.dataProtection = level;
        session.reply(200, level === 'P' ? 'Data connections will be encrypted.' : 'Data connections will be in the clear.');
      } else if (level === 'S' || level === 'E') {
        session.reply(536, 'Only PROT C and PROT P are supported.');
      } else {
        session.reply(504, 'Syntax: PROT C | P');
      }
    },
  },
  {
    verb: 'CCC',
    syntax: 'CCC',
    auth: false,
    arg: 'none',
    // RFC 4217 §6: a server may refuse to clear the control channel.
    handler: (session) => session.reply(534, 'CCC is refused: the control connection stays encrypted.'),
  },
];
