import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword, isPasswordHash, VerificationCache, verifyPassword } from '../../src/auth/password.js';
import type { Account } from '../../src/auth/types.js';
import { UserListAuthenticator } from '../../src/auth/user-list.js';
import { MemoryStorage } from '../../src/storage/memory.js';

// ln=10 keeps the tests fast; the format and code path are the same.
const FAST = 10;

test('a scrypt hash verifies its password and nothing else', async () => {
  const hash = await hashPassword('correct horse', FAST);
  assert.match(hash, /^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  assert.ok(isPasswordHash(hash));
  assert.equal(await verifyPassword('correct horse', hash), true);
  assert.equal(await verifyPassword('correct horsE', hash), false);
  assert.equal(await verifyPassword('', hash), false);
});

test('two hashes of one password differ (salted)', async () => {
  assert.notEqual(await hashPassword('same', FAST), await hashPassword('same', FAST));
});

test('a malformed or absurd hash never verifies', async () => {
  const salt = Buffer.from('saltsaltsalt').toString('base64').replace(/=+$/, '');
  const key = Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '');
  for (const bad of [
    '',
    'plain',
    '$scrypt$ln=99,r=8,p=1$AAAA$AAAA',
    '$scrypt$ln=15,r=8,p=1$!!$AAAA',
    '$2b$10$abcdefghijklmnopqrstuv',
    `$scrypt$ln=10,r=8,p=1$${salt}$A`, // a truncated key would match any password
    `$scrypt$ln=10,r=8,p=1$${salt}$AAA`,
    `$scrypt$ln=10,r=8,p=1$AA$${key}`, // salt too short
    `$scrypt$ln=10,r=99,p=99$${salt}$${key}`, // absurd cost
  ]) {
    assert.equal(isPasswordHash(bad), false, bad);
    assert.equal(await verifyPassword('x', bad), false, bad);
  }
});

test('the cache remembers successes only, and a changed hash misses', async () => {
  const cache = new VerificationCache();
  const hash = await hashPassword('pw', FAST);
  assert.equal(await cache.verify('u', 'wrong', hash), false);
  assert.equal(cache.size, 0);
  assert.equal(await cache.verify('u', 'pw', hash), true);
  assert.equal(cache.size, 1);
  assert.equal(await cache.verify('u', 'pw', hash), true);
  assert.equal(cache.size, 1);
  const changed = await hashPassword('new', FAST);
  assert.equal(await cache.verify('u', 'pw', changed), false, 'the old password must not pass against a new hash');
});

test('cache entries expire and the cache stays bounded', async () => {
  const hash = await hashPassword('pw', FAST);
  const short = new VerificationCache({ ttlMs: 1 });
  await short.verify('u', 'pw', hash);
  await new Promise((r) => setTimeout(r, 5));
  // An expired entry is verified again (and re-cached), never trusted blindly.
  assert.equal(await short.verify('u', 'wrong', hash), false);
  const small = new VerificationCache({ maxEntries: 3 });
  for (const user of ['a', 'b', 'c', 'd', 'e']) await small.verify(user, 'pw', hash);
  assert.equal(small.size, 3);
});

test('UserListAuthenticator refuses a malformed hash when it is built', () => {
  assert.throws(
    () => new UserListAuthenticator([{ username: 'x', passwordHash: '$scrypt$ln=10,r=8,p=1$c2FsdHNhbHQ$A', storage: new MemoryStorage(), permissions: 'elr' }]),
    /user x: passwordHash is not a valid/,
  );
});

test('UserListAuthenticator accepts hashed and plain users, refuses wrong and unknown ones', async () => {
  const storage = new MemoryStorage();
  const auth = new UserListAuthenticator([
    { username: 'hashed', passwordHash: await hashPassword('h-pass', FAST), storage, permissions: 'elr' },
    { username: 'plain', password: 'p-pass', storage, permissions: 'elr' },
  ]);
  const request = (username: string, password: string) => ({ username, password, remoteAddress: '127.0.0.1', secure: false });
  assert.equal(((await auth.authenticate(request('hashed', 'h-pass'))) as Account).username, 'hashed');
  assert.equal(((await auth.authenticate(request('plain', 'p-pass'))) as Account).username, 'plain');
  // Refusals say why (for events and logs; the client sees one 530 for all).
  assert.deepEqual(await auth.authenticate(request('hashed', 'p-pass')), { refused: 'wrong-password' });
  assert.deepEqual(await auth.authenticate(request('plain', 'h-pass')), { refused: 'wrong-password' });
  assert.deepEqual(await auth.authenticate(request('nobody', 'h-pass')), { refused: 'unknown-user' });
});

test('bcrypt and argon2id hashes imported from other servers verify (off the event loop)', async () => {
  const { bcrypt, argon2id } = await import('hash-wasm');
  const salt = new Uint8Array(16).fill(7);
  const bcryptHash = await bcrypt({ password: 'from vsftpd', salt, costFactor: 4, outputType: 'encoded' });
  const argonHash = await argon2id({ password: 'from sftpgo', salt, parallelism: 1, iterations: 1, memorySize: 64, hashLength: 32, outputType: 'encoded' });
  for (const [hash, password] of [
    [bcryptHash, 'from vsftpd'],
    [bcryptHash.replace(/^\$2[ab]\$/, '$2y$'), 'from vsftpd'],
    [argonHash, 'from sftpgo'],
  ] as const) {
    assert.ok(isPasswordHash(hash), hash);
    assert.equal(await verifyPassword(password, hash), true, hash);
    assert.equal(await verifyPassword(password + '!', hash), false, hash);
  }
  // Costs beyond the bounds are refused rather than computed.
  assert.equal(isPasswordHash(bcryptHash.replace(/\$04\$/, '$31$')), false);
  assert.equal(isPasswordHash(argonHash.replace('m=64', 'm=9999999')), false);
  assert.equal(await verifyPassword('from sftpgo', argonHash.replace('$argon2id$', '$argon2i$')), false);
});
