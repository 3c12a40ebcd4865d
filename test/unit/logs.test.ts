/**
 * The pure parts of the daemon's logs: the human line formatter, the choice
 * of format, the xferlog line (parsed back by a reader written from the
 * format's man page), and the log output writing to a file and reopening it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chooseFormat, createLogOutput } from '../../src/observability/log-output.js';
import { prettyLine } from '../../src/observability/pretty.js';
import { ctime, xferlogLine, type XferRecord } from '../../src/observability/xferlog.js';
import { xferRecord } from '../../src/observability/transfer-log.js';
import type { TransferEndMessage } from '../../src/observability/channels.js';
import { parseXferlog } from '../helpers/xferlog.js';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigError } from '../../src/config/validate.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-logs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('auto is human lines only on a terminal without a file; pretty and json are what they say', () => {
  assert.equal(chooseFormat('auto', { file: null, isTTY: true }), 'pretty');
  assert.equal(chooseFormat('auto', { file: null, isTTY: false }), 'json');
  assert.equal(chooseFormat('auto', { file: '/var/log/ferry.log', isTTY: true }), 'json');
  assert.equal(chooseFormat('pretty', { file: '/x', isTTY: false }), 'pretty');
  assert.equal(chooseFormat('json', { file: null, isTTY: true }), 'json');
});

test('a pretty line shows local time, the level, the message, then the fields as key=value', () => {
  const time = '2026-12-08T02:30:01.123Z';
  const line = prettyLine(
    JSON.stringify({ level: 'info', time, pid: 1, hostname: 'h', sessionId: 'k3x9', remoteAddress: '127.0.0.1', username: 'alice', path: '/in/a b.txt', bytes: 12, msg: 'file-received' }) + '\n',
    { color: false },
  );
  const d = new Date(time);
  const pad = (n: number) => String(n).padStart(2, '0');
  const local = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.123`;
  assert.equal(line, `${local} INFO  file-received  sessionId=k3x9 remoteAddress=127.0.0.1 username=alice path="/in/a b.txt" bytes=12\n`);
});

test('a pretty line names the worker, colours the level on a terminal, and puts a stack under its line', () => {
  const err = { type: 'Error', message: 'disk full', stack: 'Error: disk full\n    at write (a.js:1:1)\n    at main (b.js:2:2)' };
  const line = prettyLine(JSON.stringify({ level: 'error', time: Date.now(), worker: 2, err, code: 'X', msg: 'write failed' }), { color: true });
  const [first, ...stack] = line.trimEnd().split('\n');
  assert.match(first!, /^\S+ \S+ \x1b\[31mERROR\x1b\[0m \[worker 2\] write failed  err="disk full" code=X$/);
  assert.deepEqual(stack, ['    at write (a.js:1:1)', '    at main (b.js:2:2)']);
  assert.ok(!prettyLine(JSON.stringify({ level: 'error', msg: 'x' }), { color: false }).includes('\x1b'), 'no colour when told');
});

test('a pretty line quotes values that would not split on spaces, and passes a non-JSON line through', () => {
  const line = prettyLine(JSON.stringify({ level: 'warn', time: 0, msg: 'm', a: 'x=y', b: '', c: 'say "hi"', d: { n: 1 }, e: null, f: 'line\nbreak' }), { color: false });
  assert.match(line, / a="x=y" b="" c="say \\"hi\\"" d=\{"n":1\} e=null f="line\\nbreak"\n$/);
  assert.equal(line.split('\n').length, 2, 'one line');
  assert.equal(prettyLine('not json', { color: false }), 'not json\n');
});

const record = (over: Partial<XferRecord> = {}): XferRecord => ({
  end: new Date(2026, 11, 8, 2, 30, 1),
  durationMs: 2400,
  remoteAddress: '192.0.2.7',
  bytes: 1048576,
  path: '/in/cam 1.jpg',
  ascii: false,
  direction: 'upload',
  anonymous: false,
  username: 'alice',
  complete: true,
  ...over,
});

test('an xferlog line has the fourteen fields of xferlog(5) and parses back', () => {
  const line = xferlogLine(record());
  assert.equal(line, 'Tue Dec  8 02:30:01 2026 2 192.0.2.7 1048576 /in/cam_1.jpg b _ i r alice ftp 0 * c\n');
  const parsed = parseXferlog(line.trimEnd());
  assert.deepEqual(parsed, {
    time: new Date(2026, 11, 8, 2, 30, 1),
    seconds: 2,
    remoteHost: '192.0.2.7',
    bytes: 1048576,
    filename: '/in/cam_1.jpg',
    transferType: 'b',
    specialAction: '_',
    direction: 'i',
    accessMode: 'r',
    username: 'alice',
    service: 'ftp',
    authMethod: '0',
    authUserId: '*',
    status: 'c',
  });
});

test('xferlog: ascii, download, anonymous, aborted, an IPv6 client, and a two-digit day', () => {
  const line = xferlogLine(record({ ascii: true, direction: 'download', anonymous: true, username: 'anonymous', complete: false, remoteAddress: '2001:db8::1', end: new Date(2026, 0, 25, 23, 5, 9) }));
  assert.equal(line, 'Sun Jan 25 23:05:09 2026 2 2001:db8::1 1048576 /in/cam_1.jpg a _ o a anonymous ftp 0 * i\n');
  const parsed = parseXferlog(line.trimEnd());
  assert.deepEqual([parsed.transferType, parsed.direction, parsed.accessMode, parsed.status, parsed.remoteHost], ['a', 'o', 'a', 'i', '2001:db8::1']);
});

test('xferlog: spaces and control characters in a name become _, so every line splits into the same fields', () => {
  for (const name of ['/a b', '/tab\there', '/new\nline', '/cr\r', '/nbsp\u00a0x', '/del\x7f']) {
    const line = xferlogLine(record({ path: name }));
    assert.equal(line.split('\n').length, 2, `${JSON.stringify(name)} stays on one line`);
    assert.equal(parseXferlog(line.trimEnd()).filename, name.replace(/[\s\x00-\x1f\x7f]/g, '_'));
  }
});

test('xferlog: transfer time in whole seconds, at least 1 (analysers divide by it)', () => {
  const seconds = (durationMs: number) => parseXferlog(xferlogLine(record({ durationMs })).trimEnd()).seconds;
  assert.deepEqual([0, 400, 1499, 1500, 61_000].map(seconds), [1, 1, 1, 2, 61]);
});

test('ctime pads the day of the month with a space, as ctime(3) does', () => {
  assert.equal(ctime(new Date(2026, 1, 3, 4, 5, 6)), 'Tue Feb  3 04:05:06 2026');
  assert.equal(ctime(new Date(2026, 9, 31, 14, 0, 0)), 'Sat Oct 31 14:00:00 2026');
});

test('listings are not in the transfer log; files are, with their type and access mode', () => {
  const end: TransferEndMessage = {
    sessionId: 's',
    remoteAddress: '127.0.0.1',
    username: 'bob',
    verb: 'RETR',
    direction: 'download',
    path: '/f',
    storage: 'local',
    transferType: 'I',
    anonymous: false,
    startedAt: 0,
    bytes: 3,
    durationMs: 5,
    ok: true,
    reason: null,
  };
  assert.equal(xferRecord({ ...end, verb: 'LIST', direction: 'list' }, new Date()), null);
  assert.equal(xferRecord({ ...end, path: null }, new Date()), null);
  assert.deepEqual(xferRecord({ ...end, transferType: 'A', anonymous: true, ok: false }, new Date(0)), {
    end: new Date(0),
    durationMs: 5,
    remoteAddress: '127.0.0.1',
    bytes: 3,
    path: '/f',
    ascii: true,
    direction: 'download',
    anonymous: true,
    username: 'bob',
    complete: false,
  });
});

test('JSON lines carry an ISO time and the level by name; a renamed file is followed by a new one after reopen', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'ferry.log');
  const { logger, reopen } = createLogOutput({ level: 'debug', format: 'auto', file, isTTY: true });
  logger.info({ sessionId: 'a' }, 'first');
  await rename(file, `${file}.1`);
  logger.warn('second, still to the open file');
  reopen();
  logger.debug('third');
  const old = (await readFile(`${file}.1`, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const now = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(old.map((l) => [l.level, l.msg]), [['info', 'first'], ['warn', 'second, still to the open file']]);
  assert.deepEqual(now.map((l) => [l.level, l.msg]), [['debug', 'third']]);
  assert.match(String(old[0]!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(old[0]!.sessionId, 'a');
});

test('a log file that cannot be opened is refused at once, naming the setting and the way out', async (t) => {
  const dir = await tempDir(t);
  assert.throws(() => createLogOutput({ level: 'info', format: 'json', file: path.join(dir, 'missing', 'ferry.log') }), /^Error: logging\.file: cannot open .*missing\/ferry\.log for appending \(ENOENT\): create its folder/);
});

test('a reopen that fails keeps writing to the file it had, and says so on standard error', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'sub', 'ferry.log');
  await mkdir(path.dirname(file));
  const { logger, reopen } = createLogOutput({ level: 'info', format: 'json', file });
  await rename(path.dirname(file), path.join(dir, 'moved'));
  const said: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => said.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    reopen();
  } finally {
    process.stderr.write = write;
  }
  logger.info('after the failed reopen');
  assert.match(said.join(''), /logging\.file: cannot reopen .*\(ENOENT\); still writing to the file it had open/);
  assert.match(await readFile(path.join(dir, 'moved', 'ferry.log'), 'utf8'), /after the failed reopen/);
});

test('logging: file and transferLog are relative to the config file; a bad format and a shared file are refused with the fix', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'etc'));
  const config = path.join(dir, 'etc', 'ferry.yaml');
  await writeFile(config, 'storage:\n  root: /tmp\nlogging:\n  file: log/ferry.log\n  transferLog: /var/log/xferlog\n');
  const { logging } = (await loadConfig({ file: config, env: {} })).config;
  assert.deepEqual(logging, { level: 'info', format: 'auto', file: path.join(dir, 'etc', 'log', 'ferry.log'), transferLog: '/var/log/xferlog' });
  const problems = async (yaml: string) => {
    await writeFile(config, `storage:\n  root: /tmp\nlogging:\n${yaml}`);
    return loadConfig({ file: config, env: {} }).then(
      () => assert.fail('refused'),
      (err: ConfigError) => err.problems.join('\n'),
    );
  };
  assert.match(await problems('  format: text\n'), /logging\.format: "text" is not one of auto, pretty, json/);
  assert.match(await problems('  file: a.log\n  transferLog: ./a.log\n'), /logging\.transferLog: .*a file of its own, not logging\.file/);
});
