/**
 * The users file: validation with precise messages, editing that keeps the
 * operator's comments, atomic 0600 writes; permissions and address lists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { directoryPermissions, parsePermissions } from '../../src/auth/permissions.js';
import { hashPassword } from '../../src/auth/password.js';
import { addressList } from '../../src/protocol/address.js';
import { fillUsername } from '../../src/auth/username.js';
import { expandHome } from '../../src/config/build.js';
import { openUsersFile, readUsersFile } from '../../src/config/users-file.js';
import { ConfigError } from '../../src/config/validate.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-users-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const HASH = await hashPassword('pw', 10);

test('the example users file is valid and fills in defaults', async () => {
  const users = await readUsersFile('docs/users.example.yaml');
  assert.deepEqual(Object.keys(users), ['camera', 'partner', 'former-employee']);
  assert.equal(users['former-employee']!.home, '/{username}');
  assert.equal(users['former-employee']!.permissions, 'read');
  assert.equal(users['former-employee']!.disabled, true);
  assert.deepEqual(users.partner!.directories, { '/outgoing': 'read', '/incoming': 'elrw' });
});

test('users file errors name the line, the user and what is expected', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.yaml');
  const cases: Array<[string, RegExp]> = [
    ['users:\n  bob:\n    passwordHash: secret\n', /^users\.yaml:3: users\.bob\.passwordHash: "secret" is not a password hash \(scrypt, bcrypt or argon2id; make one with `ferry hash-password`\)$/],
    [`users:\n  bob:\n    passwordHash: "${HASH}"\n    allowFrom: [10.0.0.0/33]\n`, /^users\.yaml:4: users\.bob\.allowFrom\.0: "10\.0\.0\.0\/33" is not an IP address or CIDR range/],
    [`users:\n  bob:\n    passwordHash: "${HASH}"\n    permision: full\n`, /^users\.yaml:4: users\.bob\.permision: unknown setting; did you mean "permissions"\?$/],
    [`users:\n  bob:\n    passwordHash: "${HASH}"\n    home: ../etc\n`, /^users\.yaml:4: users\.bob\.home: "\.\.\/etc" is not a path inside the storage root/],
    [`users:\n  "bad name":\n    passwordHash: "${HASH}"\n`, /users\.bad name: .*is not a user name/],
    ['users:\n  bob:\n    home: /bob\n', /^users\.yaml:2: users\.bob\.passwordHash: missing; expected a password hash/],
  ];
  for (const [text, expected] of cases) {
    await writeFile(file, text);
    await assert.rejects(readUsersFile(file), (err: ConfigError) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.problems.length, 1, err.problems.join(' | '));
      assert.match(err.problems[0]!, expected);
      return true;
    });
  }
});

test('editing keeps comments, writes atomically with mode 0600 and validates before saving', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.yaml');
  await writeFile(file, `# Our FTP users\nusers:\n  # the scanner on floor 2\n  scanner:\n    passwordHash: "${HASH}"\n`);
  await chmod(file, 0o644);
  const doc = await openUsersFile(file);
  doc.set('alice', { passwordHash: HASH, permissions: 'full', allowFrom: ['10.0.0.0/8'] });
  assert.throws(() => doc.set('bob', { passwordHash: 'nope' }), ConfigError);
  doc.delete('bob');
  await doc.save();
  const text = await readFile(file, 'utf8');
  assert.match(text, /# Our FTP users/);
  assert.match(text, /# the scanner on floor 2/);
  assert.match(text, /allowFrom: \[ 10\.0\.0\.0\/8 \]/);
  assert.equal((await stat(file)).mode & 0o777, 0o640, 'the mode is kept, minus any bit for others');
  assert.deepEqual(await readdir(dir), ['users.yaml'], 'no temp file is left behind');
  const users = await readUsersFile(file);
  assert.deepEqual(Object.keys(users), ['scanner', 'alice']);
  assert.equal(users.alice!.permissions, 'full');
});

test('a new users file is 0600 and in block style; a JSON file stays JSON; numeric names are found', async (t) => {
  const dir = await tempDir(t);
  const yamlFile = path.join(dir, 'new.yaml');
  const created = await openUsersFile(yamlFile, { create: true });
  created.set('123', { passwordHash: HASH });
  created.set('bob', { passwordHash: HASH });
  await created.save();
  assert.equal((await stat(yamlFile)).mode & 0o777, 0o600);
  assert.match(await readFile(yamlFile, 'utf8'), /^users:\n  "123":\n    passwordHash: /);
  const reopened = await openUsersFile(yamlFile);
  assert.equal(reopened.has('123'), true);
  assert.equal(reopened.delete('123'), true);
  assert.deepEqual(reopened.names(), ['bob']);

  const jsonFile = path.join(dir, 'users.json');
  await writeFile(jsonFile, JSON.stringify({ users: { 7: { passwordHash: HASH } } }));
  const json = await openUsersFile(jsonFile);
  assert.ok(json.has('7'));
  json.set('carol', { passwordHash: HASH, home: '/c' });
  await json.save();
  assert.deepEqual(Object.keys(JSON.parse(await readFile(jsonFile, 'utf8')).users), ['7', 'carol']);

  await assert.rejects(openUsersFile(path.join(dir, 'typo.yaml')), /cannot read the users file \(ENOENT\); create it with `ferry user add`/);
});

test('a plain password in the users file is refused with what to do instead', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.yaml');
  await writeFile(file, `users:\n  bob:\n    passwordHash: "${HASH}"\n    password: hunter2\n`);
  await assert.rejects(readUsersFile(file), /users\.yaml:4: users\.bob\.password: plain passwords are not accepted; put a hash in passwordHash/);
});

test('a users file that does not read is never rewritten', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.yaml');
  await writeFile(file, 'users:\n  bob: [broken\n');
  await assert.rejects(openUsersFile(file), ConfigError);
  assert.equal(await readFile(file, 'utf8'), 'users:\n  bob: [broken\n');
});

test('permission specs: aliases and letters; anything else is refused', () => {
  assert.equal(parsePermissions('read'), 'elr');
  assert.equal(parsePermissions('write'), 'elrawm');
  assert.equal(parsePermissions('full'), 'elradfmwMT');
  assert.equal(parsePermissions('none'), '');
  assert.equal(parsePermissions('elrr'), 'elr');
  assert.equal(parsePermissions('rwx'), null);
  assert.equal(parsePermissions(''), null);
});

test('per-directory permissions: the deepest configured directory decides, for its whole subtree', () => {
  const can = directoryPermissions('elr', { '/incoming': 'elrw', '/incoming/locked': 'el', '/': 'elr' });
  assert.equal(can('w', '/'), false);
  assert.equal(can('w', '/incoming'), true);
  assert.equal(can('w', '/incoming/a/b.txt'), true);
  assert.equal(can('w', '/incoming-other/x'), false, 'a sibling with the same prefix is not inside');
  assert.equal(can('r', '/incoming/locked/x'), false);
  assert.equal(can('l', '/incoming/locked/x'), true);
});

test('address lists take single addresses and CIDR ranges of both families', () => {
  const list = addressList(['192.168.1.0/24', '10.1.2.3', '2001:db8::/32']);
  assert.equal(list.check('192.168.1.77', 'ipv4'), true);
  assert.equal(list.check('192.168.2.1', 'ipv4'), false);
  assert.equal(list.check('10.1.2.3', 'ipv4'), true);
  assert.equal(list.check('2001:db8:1::5', 'ipv6'), true);
  assert.equal(list.check('2001:db9::1', 'ipv6'), false);
  for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0.0/8/1', '::1/129', '']) assert.throws(() => addressList([bad]), /is not an IP address or CIDR range/);
});

test('homes: {username} is filled in; names that are not plain, and homes that climb out, are refused', () => {
  assert.equal(expandHome('/users/{username}', 'alice'), '/users/alice');
  assert.equal(expandHome('{username}', 'bob'), '/bob');
  assert.equal(expandHome('/', '../anything'), '/', 'a home without the placeholder does not depend on the name');
  for (const name of ['..', '.', 'a/b', '', ' bob', 'x\0y', '$`', '$&', "$'"]) assert.throws(() => expandHome('/users/{username}', name), /cannot be part of a path/, name);
  // The name goes in literally: a replaceAll with a string would read $& as "the placeholder".
  assert.equal(fillUsername('users/{username}/', 'a$&b'), 'users/a$&b/');
  assert.throws(() => expandHome('/users/../etc', 'bob'), /leaves the storage root/);
});
