/** Login and logout: USER, PASS, REIN, QUIT, ACCT (RFC 959 §4.1.1). */
import { setTimeout as sleep } from 'node:timers/promises';
import { isRefusal, type Account, type LoginRefusal, type TlsPolicy } from '../../auth/types.js';
import { channels, type LoginFailureReason, type LoginMessage } from '../../observability/channels.js';
import { ErrorCodes, FerryError, needsOperator, replyForError } from '../../errors.js';
import { refusalText } from '../../limits/defender.js';
import type { CommandSpec } from '../command.js';
import type { Session } from '../session.js';

/** A login that did not succeed: the event, the channel, nothing else (callers reply). */
export function loginFailed(session: Session, username: string, reason: LoginFailureReason): void {
  session.host.notify('login-failed', { sessionId: session.id, remoteAddress: session.remoteAddress, username, reason });
  publishLogin(session, username, reason);
}

function publishLogin(session: Session, username: string, outcome: LoginMessage['outcome']): void {
  if (channels.login.hasSubscribers) channels.login.publish({ sessionId: session.id, remoteAddress: session.remoteAddress, username, outcome });
}

async function pass(session: Session, password: string): Promise<void> {
  // `given` is the name the client sent (events and logs report it); `username` the one a beforeLogin hook may have put instead.
  const given = session.pendingUsername;
  if (given === null) {
    if (session.loggedIn) session.reply(230, 'Already logged in.');
    else session.reply(503, 'Send USER first.');
    return;
  }
  let username = given;
  const { options } = session.host;
  // A banned address never gets to try a password, right or wrong (its
  // connections opened before the ban, or by a guesser holding many). A
  // primary that cannot answer lets logins go on: bans fail open.
  const before = await session.host.shared.defender.verdict(session.remoteAddress).catch(() => 'allowed' as const);
  if (before !== 'allowed') {
    session.logout();
    loginFailed(session, given, 'banned');
    session.closeWith(421, refusalText(before));
    return;
  }
  // Every refusal is answered at the same moment after PASS, however long the check took.
  const answerAt = Date.now() + options.loginFailureDelayMs;
  let tlsPolicy: TlsPolicy | undefined;
  try {
    username = (await session.runHook('beforeLogin', { username, secure: session.secure })).username;
    if (username !== given) {
      // USER checked the TLS policy of the name the client gave; the account it now logs into may have its own.
      tlsPolicy = session.tlsPolicyFor(username);
      if (tlsPolicy !== 'optional' && !session.secure) throw new FerryError(ErrorCodes.TLS_REQUIRED_FOR_LOGIN, `a beforeLogin hook chose user ${username}, who must use TLS`);
    }
  } catch (err) {
    // Refused by the embedder's policy, not a guess: no offence is scored, but it counts as an attempt.
    session.logout();
    session.failedLogins++;
    const code = (err as FerryError).code;
    loginFailed(session, given, code === ErrorCodes.HOOK_DENIED ? 'denied-by-hook' : code === ErrorCodes.TLS_REQUIRED_FOR_LOGIN ? 'tls-required' : 'error');
    await sleep(Math.max(0, answerAt - Date.now()));
    const { text } = replyForError(err);
    if (session.failedLogins >= options.maxLoginAttempts) session.closeWith(421, 'Too many failed logins; closing connection.');
    else session.reply(530, text);
    return;
  }
  let answer: Account | LoginRefusal | null = null;
  try {
    answer = await options.authenticator.authenticate({
      username,
      password,
      remoteAddress: session.remoteAddress,
      secure: session.secure,
      clientCertificate: session.clientCertificate,
    });
  } catch (err) {
    if (err instanceof FerryError && err.code === ErrorCodes.HOME_UNAVAILABLE) {
      // The password was right: no failed login to count or delay, and the
      // operator, not the client, must act (chown the folder, fix runAs).
      session.logout();
      loginFailed(session, given, 'error');
      session.log.warn({ username, reason: err.message }, 'login refused: the account\'s home folder cannot be opened by the server process; check its owner and mode (and runAs)');
      const { code, text } = replyForError(err);
      session.closeWith(code, text);
      return;
    }
    session.log.error({ err, username }, 'authenticator failed');
    answer = { refused: 'error' };
  }
  if (answer && !isRefusal(answer)) {
    try {
      if (!(await session.login(answer, tlsPolicy))) return; // the client left while we checked
    } catch (err) {
      // Over maxSessions (or it could not be checked): the password was right, so no failed login counts.
      session.logout();
      const tooMany = (err as FerryError).code === ErrorCodes.TOO_MANY_SESSIONS;
      loginFailed(session, given, tooMany ? 'too-many-sessions' : 'error');
      if (needsOperator(err)) session.log.error({ username, reason: (err as Error).message }, 'login refused: a limit could not be checked');
      else session.log.info({ username, reason: (err as Error).message }, 'login refused');
      const { code, text } = replyForError(err);
      session.closeWith(code, text);
      return;
    }
    session.host.notify('login', { ...session.who, secure: session.secure });
    publishLogin(session, username, 'success');
    session.reply(230, 'Login successful.');
    return;
  }
  session.logout(); // a new USER is needed either way
  session.failedLogins++;
  loginFailed(session, given, answer?.refused ?? 'wrong-password');
  // An unknown user and a wrong password score alike: a ban must not tell which names exist.
  const verdict = await session.offence('login-failed');
  await sleep(Math.max(0, answerAt - Date.now()));
  if (verdict !== 'allowed') session.closeWith(421, refusalText(verdict));
  else if (session.failedLogins >= options.maxLoginAttempts) session.closeWith(421, 'Too many failed logins; closing connection.');
  else session.reply(530, 'Login incorrect.');
}

export const authCommands: CommandSpec[] = [
  {
    verb: 'USER',
    syntax: 'USER <sp> username',
    auth: false,
    arg: 'required',
    handler(session, { arg }) {
      const tlsPolicy = session.tlsPolicyFor(arg);
      if (tlsPolicy !== 'optional' && !session.secure) {
        // Refused before the password is sent: it would travel in the clear.
        session.logout();
        loginFailed(session, arg, 'tls-required');
        session.replyError(new FerryError(ErrorCodes.TLS_REQUIRED_FOR_LOGIN, `user ${arg} must use TLS`));
        return;
      }
      session.setUsername(arg, tlsPolicy);
      session.reply(331, 'Please specify the password.');
    },
  },
  {
    verb: 'PASS',
    syntax: 'PASS [<sp> password]',
    auth: false,
    arg: 'optional',
    handler: (session, { arg }) => pass(session, arg),
  },
  {
    verb: 'REIN',
    syntax: 'REIN',
    auth: false,
    arg: 'none',
    handler(session) {
      session.logout();
      session.reply(220, 'Ready for a new user.');
    },
  },
  {
    verb: 'QUIT',
    syntax: 'QUIT',
    auth: false,
    arg: 'optional',
    handler(session) {
      session.closeWith(221, 'Goodbye.');
    },
  },
  {
    verb: 'ACCT',
    syntax: 'ACCT <sp> account',
    auth: false,
    arg: 'required',
    handler(session) {
      session.reply(202, 'ACCT is not needed on this server.');
    },
  },
];
