/**
 * Permission specs: the library's authenticators and the users file accept
 * and refuse the same specs (issue 12: UserListAuthenticator took letters
 * the YAML refused, and granted whatever letters happened to match).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AnonymousAuthenticator } from '../../src/auth/anonymous.js';
import { hashPassword } from '../../src/auth/password.js';
import { PermissionSpecError } from '../../src/auth/permissions.js';
import { accountHasPermission, type Account } from '../../src/auth/types.js';
import { UserListAuthenticator } from '../../src/auth/user-list.js';
import { readUsersFile } from '../../src/config/users-file.js';
import { ConfigError } from '../../src/config/validate.js';
import { MemoryStorage } from '../../src/storage/memory.js';

const storage = new MemoryStorage();
const SPECS = ['elr', 'full', 'read', 'write', 'none', 'elradfmwMT', 'rrl', 'elrx', 'ful', 'readonly', 'READ', '', 'e l', 'W'];
const HASH = await hashPassword('pw', 10);

test('UserListAuthenticator accepts exactly the permission specs the users file accepts', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-perms-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'users.yaml');
  let refused = 0;
  for (const spec of SPECS) {
    await writeFile(file, `users:\n  bob:\n    passwordHash: "${HASH}"\n    permissions: ${JSON.stringify(spec)}\n`);
    const yaml = await readUsersFile(file).then(
      () => true,
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        return false;
      },
    );
    let library = true;
    try {
      new UserListAuthenticator([{ username: 'bob', password: 'pw', storage, permissions: spec }]);
    } catch (err) {
      assert.ok(err instanceof PermissionSpecError, String(err));
      library = false;
    }
    assert.equal(library, yaml, `spec ${JSON.stringify(spec)}: library ${library}, users file ${yaml}`);
    if (!yaml) refused++;
  }
  assert.equal(refused, 7, 'the table holds refused specs as well as accepted ones');
});

test('a bad letter throws a PermissionSpecError naming the user, the setting and the letter', () => {
  assert.throws(
    () => new UserListAuthenticator([{ username: 'cam', password: 'pw', storage, permissions: 'elrx' }]),
    (err: PermissionSpecError) => {
      assert.ok(err instanceof PermissionSpecError && err instanceof TypeError);
      assert.deepEqual([err.username, err.spec, err.letter, err.setting], ['cam', 'elrx', 'x', 'permissions']);
      assert.match(err.message, /^user cam: permissions "elrx" has "x", which is no permission letter; use letters from "elradfmwMT" or one of none, read, write, full$/);
      return true;
    },
  );
  assert.throws(
    () => new UserListAuthenticator([{ username: 'cam', password: 'pw', storage, permissions: 'read', directoryPermissions: { '/in': 'readwrite' } }]),
    /^PermissionSpecError: user cam: directoryPermissions\["\/in"\] "readwrite" has "i", which is no permission letter/,
  );
  assert.throws(() => new UserListAuthenticator([{ username: 'cam', password: 'pw', storage, permissions: '' }]), /user cam: permissions "" is empty/);
  assert.throws(() => new AnonymousAuthenticator({ storage, permissions: 'rw+' }), /^PermissionSpecError: user anonymous: permissions "rw\+" has "\+"/);
});

test('aliases given to the library grant what they grant in the users file', async () => {
  const auth = new UserListAuthenticator([
    { username: 'dev', password: 'pw', storage, permissions: 'write', directoryPermissions: { '/archive': 'read' } },
    { username: 'all', password: 'pw', storage, permissions: 'full' },
  ]);
  const login = async (username: string) => (await auth.authenticate({ username, password: 'pw', remoteAddress: '127.0.0.1', secure: false })) as Account;
  const dev = await login('dev');
  assert.equal(dev.permissions, 'elrawm');
  assert.equal(accountHasPermission(dev, 'w', '/in/x'), true);
  assert.equal(accountHasPermission(dev, 'w', '/archive/x'), false);
  assert.equal(accountHasPermission(dev, 'r', '/archive/x'), true);
  // Before, "full" was read letter by letter: f (rename) and l (list), nothing else.
  assert.equal((await login('all')).permissions, 'elradfmwMT');
  const anonymous = await new AnonymousAuthenticator({ storage, permissions: 'write' }).authenticate({ username: 'ftp', password: 'x', remoteAddress: '127.0.0.1', secure: false });
  assert.equal((anonymous as Account).permissions, 'elrawm');
});
