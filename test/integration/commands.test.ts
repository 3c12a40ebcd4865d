/**
 * The command table's seams: SITE and OPTS subcommands as rows (with the
 * generic checks run from each row), commands added by an embedder, and
 * the diagnostics channels a real session publishes on.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { writeFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Client } from 'basic-ftp';
import type { CommandSpec } from '../../src/index.js';
import { commandTable } from '../../src/session/command-table.js';
import { RawClient } from '../helpers/ftp-raw.js';
import { PASSWORD, startServer, USER } from '../helpers/server.js';

const ping: CommandSpec = {
  verb: 'SITE PING',
  syntax: 'SITE PING [<sp> text]',
  auth: true,
  arg: 'optional',
  handler: (session, { arg }) => session.reply(200, `PONG ${arg}`.trim()),
};

const whoami: CommandSpec = {
  verb: 'XWHO',
  syntax: 'XWHO',
  auth: true,
  arg: 'none',
  feature: () => 'XWHO',
  handler: (session) => session.reply(200, `You are ${session.account!.username}.`),
};

describe('SITE and OPTS rows', () => {
  test('each subcommand is a row with its own checks; unknown ones are answered by the parent', async (t) => {
    const { port, root } = await startServer(t, { permissions: 'elr' });
    await writeFile(path.join(root, 'f.txt'), 'x');
    const client = await RawClient.connect(port);
    t.after(() => client.close());
    await client.expect(220);
    // Before login: SITE HELP works (a row without auth), SITE CHMOD needs a login.
    const help = await client.command('SITE HELP', 214);
    assert.match(help.lines.join('\n'), /CHMOD <sp> mode <sp> pathname/);
    await client.command('SITE CHMOD 644 f.txt', 530);
    await client.command('SITE', 501);
    assert.match((await client.command('SITE NOSUCH x', 500)).lines[0]!, /Unknown SITE command "NOSUCH"/);
    await client.command('OPTS UTF8 ON', 200);
    await client.command('opts utf-8 on', 200);
    await client.command('OPTS UTF8 OFF', 504);
    assert.match((await client.command('OPTS FROB 1', 501)).lines[0]!, /Option "FROB" not understood/);
    assert.match((await client.command('OPTS MLST size;type;', 200)).lines[0]!, /MLST OPTS type;size;|MLST OPTS size;type;/);
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    // The row's permission ('M') is checked before its handler: this user has elr.
    await client.command('SITE CHMOD 600 f.txt', 550);
    await client.command('SITE CHMOD 600 ../../etc/passwd', 550);
    const helpSite = await client.command('HELP SITE', 214);
    assert.ok(helpSite.lines.some((l) => l.includes('SITE CHMOD')), helpSite.lines.join('|'));
    const helpAll = await client.command('HELP', 214);
    assert.ok(!helpAll.lines.some((l) => l.includes('CHMOD')), 'HELP lists top-level verbs only');
  });

  test('SITE CHMOD changes the mode and checks its syntax after the login and permission', async (t) => {
    const { port, root } = await startServer(t);
    await writeFile(path.join(root, 'f.txt'), 'x');
    const client = await RawClient.login(port, USER, PASSWORD);
    t.after(() => client.close());
    await client.command('SITE CHMOD 600 f.txt', 200);
    assert.equal((await stat(path.join(root, 'f.txt'))).mode & 0o777, 0o600);
    await client.command('SITE CHMOD rw f.txt', 501);
    await client.command('site chmod 640 f.txt', 200);
    assert.equal((await stat(path.join(root, 'f.txt'))).mode & 0o777, 0o640);
  });
});

describe('commands of an embedder', () => {
  test('a new verb and a new SITE row run with the generic checks, and appear in FEAT and HELP', async (t) => {
    const { port } = await startServer(t, { commands: [ping, whoami] });
    const client = await RawClient.connect(port);
    t.after(() => client.close());
    await client.expect(220);
    await client.command('SITE PING', 530);
    await client.command('XWHO', 530);
    await client.command(`USER ${USER}`, 331);
    await client.command(`PASS ${PASSWORD}`, 230);
    assert.equal((await client.command('SITE PING hello', 200)).lines[0], '200 PONG hello');
    assert.equal((await client.command('XWHO', 200)).lines[0], `200 You are ${USER}.`);
    await client.command('XWHO extra', 501);
    const feat = await client.command('FEAT', 211);
    assert.ok(feat.lines.includes(' XWHO'), feat.lines.join('|'));
    assert.ok((await client.command('HELP', 214)).lines.join(' ').includes('XWHO'));
    assert.match((await client.command('SITE HELP', 214)).lines.join('\n'), /PING/);
  });

  test('a verb the table has, a malformed verb, or a row under a verb without subcommands is refused at construction', () => {
    assert.throws(() => commandTable([{ ...whoami, verb: 'RETR' }]), /RETR is already a command of the server/);
    assert.throws(() => commandTable([{ ...ping, verb: 'SITE CHMOD' }]), /SITE CHMOD is already a command/);
    assert.throws(() => commandTable([{ ...whoami, verb: 'x y z' }]), /one or two upper-case words/);
    assert.throws(() => commandTable([{ ...whoami, verb: 'RETR FAST' }]), /RETR takes no subcommands/);
    assert.throws(() => commandTable([{ ...whoami, handler: undefined as never }]), /no handler/);
  });
});

describe('diagnostics channels', () => {
  test('a session publishes open, command, reply, login, transfer start/end, event and close, in order', async (t) => {
    const { port } = await startServer(t);
    const seen: Array<{ channel: string; message: Record<string, unknown> }> = [];
    const names = ['ferry:session:open', 'ferry:command', 'ferry:reply', 'ferry:transfer:start', 'ferry:transfer:end', 'ferry:event', 'ferry:session:close'];
    const listeners = names.map((name) => {
      const listener = (message: unknown) => seen.push({ channel: name, message: message as Record<string, unknown> });
      diagnostics.subscribe(name, listener);
      return () => diagnostics.unsubscribe(name, listener);
    });
    t.after(() => listeners.forEach((off) => off()));
    const client = new Client(10_000);
    await client.access({ host: '127.0.0.1', port, user: USER, password: PASSWORD });
    const { Readable } = await import('node:stream');
    await client.uploadFrom(Readable.from([Buffer.alloc(1000, 1)]), 'up.bin');
    client.close();
    const deadline = Date.now() + 5000;
    while (!seen.some((s) => s.channel === 'ferry:session:close') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

    const opened = seen.find((s) => s.channel === 'ferry:session:open')!;
    const sessionId = opened.message.sessionId;
    assert.equal(opened.message.remoteAddress, '127.0.0.1');
    const mine = seen.filter((s) => s.message.sessionId === sessionId || (s.message.info as Record<string, unknown> | undefined)?.sessionId === sessionId);
    const commands = mine.filter((s) => s.channel === 'ferry:command').map((s) => s.message.verb);
    assert.ok(commands.includes('USER') && commands.includes('PASS') && commands.includes('STOR'), String(commands));
    const pass = mine.find((s) => s.channel === 'ferry:command' && s.message.verb === 'PASS')!;
    assert.equal(pass.message.arg, '', 'the password never reaches a channel');
    assert.ok(!JSON.stringify(seen).includes(PASSWORD));
    const codes = mine.filter((s) => s.channel === 'ferry:reply').map((s) => s.message.code);
    assert.equal(codes[0], 220);
    assert.ok(codes.indexOf(331) < codes.indexOf(230), String(codes));
    assert.ok(codes.includes(150) && codes.includes(226));
    const start = mine.find((s) => s.channel === 'ferry:transfer:start')!;
    const end = mine.find((s) => s.channel === 'ferry:transfer:end')!;
    assert.equal(start.message.direction, 'upload');
    assert.equal(start.message.path, '/up.bin');
    assert.equal(start.message.storage, 'local');
    assert.equal(end.message.ok, true);
    assert.equal(end.message.reason, null);
    assert.ok((end.message.bytes as number) >= 1000);
    const events = mine.filter((s) => s.channel === 'ferry:event').map((s) => s.message.name);
    assert.deepEqual(events.filter((n) => n !== 'logout'), ['connect', 'login', 'file-received', 'disconnect']);
    const order = mine.map((s) => s.channel);
    assert.ok(order.indexOf('ferry:transfer:start') < order.indexOf('ferry:transfer:end'));
    assert.equal(order.at(-1), 'ferry:session:close');
  });
});
