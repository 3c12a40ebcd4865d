import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { baseName, joinPath, parentPath, resolvePath, stripListOptions } from '../../src/protocol/path.js';

const ok = (cwd: string, input: string) => {
  const result = resolvePath(cwd, input);
  assert.ok(result.ok, `expected ${input} to resolve`);
  return result.path;
};

test('relative paths resolve against the current directory', () => {
  assert.equal(ok('/a', 'b/c'), '/a/b/c');
  assert.equal(ok('/', 'x'), '/x');
  assert.equal(ok('/a', ''), '/a');
});

test('absolute paths start at the virtual root', () => {
  assert.equal(ok('/a/b', '/etc/passwd'), '/etc/passwd');
});

test('.. stops at the root however many there are', () => {
  assert.equal(ok('/a', '../../../../etc/passwd'), '/etc/passwd');
  assert.equal(ok('/', '..'), '/');
  assert.equal(ok('/a/b', '../c/./d/..'), '/a/c');
});

test('duplicate and trailing slashes vanish', () => {
  assert.equal(ok('/', '//a///b//'), '/a/b');
});

test('NUL bytes are rejected', () => {
  assert.deepEqual(resolvePath('/', 'a\0b'), { ok: false, reason: 'nul' });
});

test('control characters in names are rejected', () => {
  assert.deepEqual(resolvePath('/', 'a\rb'), { ok: false, reason: 'control' });
  assert.deepEqual(resolvePath('/', '\x1b[31mred'), { ok: false, reason: 'control' });
});

test('over-long names and paths are rejected', () => {
  assert.deepEqual(resolvePath('/', 'x'.repeat(256)), { ok: false, reason: 'too-long' });
  assert.deepEqual(resolvePath('/', Array(1000).fill('abcdefgh').join('/')), { ok: false, reason: 'too-long' });
});

test('names with spaces, quotes, dashes and non-ASCII are kept as they are', () => {
  assert.equal(ok('/', ' a "b" -rf naïve 日本 '), '/ a "b" -rf naïve 日本 ');
});

test('no input ever resolves outside the root or keeps a dot segment', () => {
  const segment = fc.oneof(fc.constant('..'), fc.constant('.'), fc.constant(''), fc.string({ maxLength: 6 }));
  fc.assert(
    fc.property(fc.array(segment, { maxLength: 12 }), fc.array(segment, { maxLength: 6 }), (input, cwdParts) => {
      const cwd = ok('/', cwdParts.join('/'));
      const result = resolvePath(cwd, input.join('/'));
      if (!result.ok) return;
      assert.ok(result.path.startsWith('/'));
      const parts = result.path.split('/').slice(1);
      if (result.path !== '/') assert.ok(parts.every((p) => p !== '' && p !== '.' && p !== '..'), result.path);
      // Resolving again is a no-op: normal form.
      assert.equal(ok('/', result.path), result.path);
    }),
    { numRuns: 500 },
  );
});

test('path helpers', () => {
  assert.equal(parentPath('/a/b'), '/a');
  assert.equal(parentPath('/a'), '/');
  assert.equal(baseName('/a/b c'), 'b c');
  assert.equal(joinPath('/', 'x'), '/x');
  assert.equal(joinPath('/a', 'x'), '/a/x');
});

test('LIST options are stripped but file names are not', () => {
  assert.equal(stripListOptions('-la'), '');
  assert.equal(stripListOptions('-a -l dir'), 'dir');
  assert.equal(stripListOptions('./-la'), './-la');
  assert.equal(stripListOptions('dir -la'), 'dir -la');
});

test('LIST and NLST options with digits (ls -1, as ncftpls sends) are stripped; ./-1 still names a file (issue 12)', () => {
  assert.equal(stripListOptions('-1'), '');
  assert.equal(stripListOptions('-1a'), '');
  assert.equal(stripListOptions('-la1 dir'), 'dir');
  assert.equal(stripListOptions('-1 -a  sub dir'), 'sub dir');
  assert.equal(stripListOptions('./-1'), './-1');
  assert.equal(stripListOptions('-1/x'), '-1/x');
  assert.equal(stripListOptions('-'), '-');
});
