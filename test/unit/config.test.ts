/**
 * The configuration file: defaults, every class of error with its precise
 * message, environment variables and flags over the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { envName, loadConfig, nobodyCanLogIn, type LoadOptions } from '../../src/config/load.js';
import { configSchema, storageLocation } from '../../src/config/schema.js';
import { ConfigError, leafPaths } from '../../src/config/validate.js';

/** Load `text` as ferry.yaml from a temp folder that has a `files` folder (the default root there). */
async function withFile(text: string, options: Omit<LoadOptions, 'file'> = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-config-'));
  try {
    const file = path.join(dir, 'ferry.yaml');
    await mkdir(path.join(dir, 'files'));
    await writeFile(file, /^(storage:|- )/m.test(text) ? text : `${text}\nstorage:\n  root: files\n`);
    return { dir, loaded: await loadConfig({ env: {}, ...options, file }) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function problemsOf(text: string, options: Omit<LoadOptions, 'file'> = {}): Promise<string[]> {
  try {
    await withFile(text, options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected the configuration to be refused');
}

test('the example configuration lists every key, each with its default', async () => {
  const example = path.resolve('docs/ferry.example.yaml');
  const raw = parse(await readFile(example, 'utf8')) as Record<string, unknown>;
  // Storage keys of other types than the example's (local) are documented with their type (docs/s3.md).
  const localKeys = ['type', 'root', 'fsync'];
  for (const keyPath of leafPaths(configSchema).filter((p) => p[0] !== 'storage' || localKeys.includes(p[1]!))) {
    let at: unknown = raw;
    for (const key of keyPath) at = (at as Record<string, unknown>)?.[key];
    assert.notEqual(at, undefined, `${keyPath.join('.')} is missing from docs/ferry.example.yaml`);
  }
  // The example's /srv/ftp need not exist here: the same existing root is given to both.
  const root = [{ path: ['storage', 'root'], value: os.tmpdir(), source: '--root' }];
  const fromExample = (await loadConfig({ file: example, overrides: root })).config;
  const defaults = (await loadConfig({ overrides: root })).config;
  assert.deepEqual(fromExample, defaults);
});

test('defaults are secure: anonymous off, nobody can log in until configured, fsync on', async () => {
  const { loaded } = await withFile('port: 2121\n');
  assert.equal(loaded.config.anonymous.enabled, false);
  assert.equal(loaded.config.users.file, null);
  assert.deepEqual(loaded.config.storage, { type: 'local', root: loaded.config.storage.type === 'local' && loaded.config.storage.root, fsync: true });
  assert.equal(loaded.config.storage.type, 'local', 'local is the storage type when none is said');
  assert.match((await nobodyCanLogIn(loaded.config)) ?? '', /^nobody can log in: set users\.file/);
});

test('each class of error names the file, the line, the key, the value and what is expected', async () => {
  const cases: Array<[string, RegExp]> = [
    ['passivePorts: 70000-70010\n', /^ferry\.yaml:1: passivePorts: "70000-70010" is not a port range like 50000-50100 \(1-65535\)$/],
    ['host: 0.0.0.0\nport: 70000\n', /^ferry\.yaml:2: port: 70000 is not a whole number from 0 to 65535$/],
    ['port: "21"\n', /^ferry\.yaml:1: port: "21" is not a whole number from 0 to 65535$/],
    ['limits:\n  maxConections: 5\n', /^ferry\.yaml:2: limits\.maxConections: unknown setting; did you mean "maxConnections"\?$/],
    ['passivePorts: 50100-50000\n', /^ferry\.yaml:1: passivePorts: "50100-50000" is not a port range from low to high \(it is reversed\); write 50000-50100$/],
    ['passive_ports: 50000-50010\n', /^ferry\.yaml:1: passive_ports: unknown setting; did you mean "passivePorts"\?$/],
    ['colour: blue\n', /^ferry\.yaml:1: colour: unknown setting; expected one of host, port, .*runAs, defender, .*controlSocket$/],
    ['workers: many\n', /^ferry\.yaml:1: workers: "many" is not a number of processes from 1 to 256, or auto$/],
    ['masqueradeAddress: "::1"\n', /^ferry\.yaml:1: masqueradeAddress: "::1" is not an IPv4 address/],
    ['anonymous:\n  enabled: yes please\n', /^ferry\.yaml:2: anonymous\.enabled: "yes please" is not true or false$/],
    ['defender:\n  denyList: [10.0.0.0/33]\n', /^ferry\.yaml:2: defender\.denyList\.0: "10\.0\.0\.0\/33" is not an IP address or CIDR range like 192\.168\.1\.0\/24$/],
    ['defender:\n  banMs: 60000\n  maxBanMs: 1000\n', /^ferry\.yaml:3: defender\.maxBanMs: 1000 is not at least banMs \(60000\)$/],
    ['defender:\n  scores:\n    loginFailed: -1\n', /^ferry\.yaml:3: defender\.scores\.loginFailed: -1 is not a whole number of at least 0$/],
    ['anonymous:\n  permissions: rwx\n', /^ferry\.yaml:2: anonymous\.permissions: "rwx" is not letters from "elradfmwMT" or one of none, read, write, full$/],
    ['storage:\n  type: ftp\n', /^ferry\.yaml:2: storage\.type: "ftp" is not /],
    ['storage:\n  type: local\n  rot: /srv\n', /^ferry\.yaml:3: storage\.rot: unknown setting; did you mean "root"\?$/],
    ['logging:\n  level: loud\n', /^ferry\.yaml:2: logging\.level: "loud" is not one of debug, info, warn, error, silent$/],
    ['authHook:\n  url: ftp://x\n', /^ferry\.yaml:2: authHook\.url: "ftp:\/\/x" is not an http:\/\/ or https:\/\/ URL$/],
    ['limits: 5\n', /^ferry\.yaml:1: limits: 5 is not a mapping of settings \(indented key: value lines\)$/],
    ['host: "my host"\n', /^ferry\.yaml:1: host: "my host" is not an address or host name to listen on/],
    ['storage:\n  type: local\n  root: missing\n', /^storage\.root: .*\/missing: no such folder; create it or name an existing folder$/],
    ['storage:\n  type: local\n  root: ferry.yaml\n', /^storage\.root: .*ferry\.yaml: not a folder; name a folder$/],
    ['port: [1,\n', /^ferry\.yaml:\d: not valid YAML: /],
    ['port: 1\nport: 2\n', /^ferry\.yaml:2: not valid YAML: .*[Dd]uplicate|unique/],
    ['- port\n', /^ferry\.yaml: expected a mapping of settings/],
    ['tls:\n  policy: data\n', /^tls\.policy: needs tls\.cert and tls\.key \(--tls-cert, --tls-key\); without them Ferry serves plain FTP only$/],
    ['port: 2121\npassivePorts: 2100-2200\n', /^passivePorts: 2100-2200 includes the control port 2121; choose a range without it$/],
    ['proxyProtocol:\n  trustedSources: [10.0.0.0/33]\n', /^ferry\.yaml:2: proxyProtocol\.trustedSources\.0: "10\.0\.0\.0\/33" is not an IP address or CIDR range like 192\.168\.1\.0\/24$/],
    ['proxyProtocol:\n  trustedSources: 10.0.0.1\n', /^ferry\.yaml:2: proxyProtocol\.trustedSources: "10\.0\.0\.1" is not a list of IP addresses or CIDR ranges$/],
    ['proxyProtocol:\n  headerTimeoutMs: 0\n', /^ferry\.yaml:2: proxyProtocol\.headerTimeoutMs: 0 is not a whole number of at least 1$/],
    ['storage:\n  type: s3\n  bucket: drops\n  maxFileSizeBytes: 10\n', /^ferry\.yaml:4: storage\.maxFileSizeBytes: 10 is not a storage setting any more: set limits\.maxFileSizeBytes/],
    ['controlSocket: ""\n', /^ferry\.yaml:1: controlSocket: "" is not a path for a Unix socket/],
    ['metrics:\n  path: metrics\n', /^ferry\.yaml:2: metrics\.path: "metrics" is not a URL path starting with \/, like \/metrics$/],
  ];
  for (const [text, expected] of cases) {
    const problems = await problemsOf(text);
    assert.equal(problems.length, 1, `${JSON.stringify(text)} → ${problems.join(' | ')}`);
    assert.match(problems[0]!, expected, JSON.stringify(text));
  }
});

test('a setting in the wrong section points to where it belongs, for every nested setting of the schema (issue 12)', async () => {
  const nested = leafPaths(configSchema).filter((p) => p.length > 1);
  assert.ok(nested.length > 30, 'the schema has its nested settings');
  for (const keyPath of nested) {
    const name = keyPath[keyPath.length - 1]!;
    // Names that are also top-level settings (e.g. none today) would be right where they are.
    if (leafPaths(configSchema).some((p) => p.length === 1 && p[0] === name)) continue;
    const problems = await problemsOf(`${name}: 1\n`);
    // The same name in several sections (storage.type, tls.policy...) names one of them.
    const where = leafPaths(configSchema).filter((p) => p[p.length - 1] === name).map((p) => p.join('.'));
    assert.equal(problems.length, 1, `${name}: ${problems.join(' | ')}`);
    const suggested = /^ferry\.yaml:1: \S+: unknown setting here; did you mean "([^"]+)"\?$/.exec(problems[0]!)?.[1];
    assert.ok(suggested && where.includes(suggested), `${name} at the top: ${problems[0]}`);
  }
  // One level down, a top-level setting is named as such; a near miss of this level still wins over a far setting.
  assert.deepEqual(await problemsOf('limits:\n  port: 21\n'), ['ferry.yaml:2: limits.port: unknown setting here; did you mean "port" (at the top level)?']);
  assert.deepEqual(await problemsOf('limits:\n  maxConection: 5\n'), ['ferry.yaml:2: limits.maxConection: unknown setting; did you mean "maxConnections"?']);
  // Environment variables: the name without its section.
  for (const [name, meant] of [['FERRY_MAXCONNECTIONS', 'FERRY_LIMITS_MAX_CONNECTIONS'], ['FERRY_IMPLICIT_PORT', 'FERRY_TLS_IMPLICIT_PORT'], ['FERRY_ROOT', 'FERRY_STORAGE_ROOT']] as const) {
    assert.deepEqual(await problemsOf('banner: x\n', { env: { [name]: '5' } }), [`environment ${name}: unknown setting; did you mean ${meant}?`]);
  }
});

test('an empty users file warns that nobody can log in, as a missing one does (issue 12)', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'files'));
  const file = path.join(dir, 'ferry.yaml');
  await writeFile(file, 'storage:\n  root: files\nusers:\n  file: users.yaml\n');
  for (const empty of ['', 'users:\n', 'users: {}\n']) {
    await writeFile(path.join(dir, 'users.yaml'), empty);
    const { config } = await loadConfig({ file, env: {} });
    assert.equal(await nobodyCanLogIn(config), `nobody can log in: ${path.join(dir, 'users.yaml')} has no users; add one with \`ferry user add\`, or set authHook.url or anonymous.enabled`);
  }
  await writeFile(path.join(dir, 'users.yaml'), 'users:\n  alice:\n    passwordHash: "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"\n');
  assert.equal(await nobodyCanLogIn((await loadConfig({ file, env: {} })).config), null);
});

test('several problems are reported together, each on its own line', async () => {
  const problems = await problemsOf('port: -1\nbanner: 5\nlimits:\n  idleTimeoutMs: 0\n');
  assert.deepEqual(
    problems.map((p) => p.split(':').slice(0, 3).join(':')),
    ['ferry.yaml:1: port', 'ferry.yaml:2: banner', 'ferry.yaml:4: limits.idleTimeoutMs'],
  );
});

test('a users file inside the served folder is refused (users could download the hashes)', async () => {
  const problems = await problemsOf('storage:\n  type: local\n  root: files\nusers:\n  file: files/users.yaml\n');
  assert.match(problems[0]!, /^users\.file: .*files\/users\.yaml is inside storage\.root, so users could download the password hashes; move it out$/);
});

test('an unreadable file is named with the reason', async () => {
  await assert.rejects(loadConfig({ file: '/nonexistent/ferry.yaml', env: {} }), (err: ConfigError) => {
    assert.match(err.problems[0]!, /^\/nonexistent\/ferry\.yaml: cannot read the configuration file \(ENOENT\)$/);
    return true;
  });
});

test('FERRY_* variables override the file, flags override both, and each is named in errors', async () => {
  assert.equal(envName(['limits', 'maxConnectionsPerIp']), 'FERRY_LIMITS_MAX_CONNECTIONS_PER_IP');
  const env = { FERRY_PORT: '2200', FERRY_BANNER: '123', FERRY_PASSIVE_PORTS: '50000-50010', FERRY_ANONYMOUS_ENABLED: 'true', FERRY_MASQUERADE_ADDRESS: '203.0.113.7' };
  const { loaded } = await withFile('port: 2100\nbanner: hello\n', { env });
  assert.equal(loaded.config.port, 2200);
  assert.equal(loaded.config.banner, '123', 'a text key keeps the text, even when it looks like a number');
  assert.equal(loaded.config.passivePorts, '50000-50010');
  assert.equal(loaded.config.anonymous.enabled, true);
  assert.equal(loaded.config.masqueradeAddress, '203.0.113.7');

  const overridden = await withFile('port: 2100\n', { env, overrides: [{ path: ['port'], value: 2300, source: '--port' }] });
  assert.equal(overridden.loaded.config.port, 2300);

  assert.deepEqual(await problemsOf('banner: x\n', { env: { FERRY_LIMITS_MAX_CONNECTIONS: 'lots' } }), [
    'environment FERRY_LIMITS_MAX_CONNECTIONS: limits.maxConnections: "lots" is not a whole number of at least 1',
  ]);
  assert.deepEqual(await problemsOf('banner: x\n', { env: { FERRY_PROT: '21' } }), ['environment FERRY_PROT: unknown setting; did you mean FERRY_PORT?']);
  assert.deepEqual(await problemsOf('banner: x\n', { overrides: [{ path: ['port'], value: 70000, source: '--port' }] }), [
    '--port: 70000 is not a whole number from 0 to 65535',
  ]);
  assert.equal((await withFile('banner: x\n', { env: { FERRY_HOST: 'localhost' } })).loaded.config.host, 'localhost');
});

test('without a file, an unknown FERRY_* variable is a warning, not a reason to refuse to start', async () => {
  const loaded = await loadConfig({ env: { FERRY_HOME: '/home/me' }, preset: { storage: { root: os.tmpdir() } } });
  assert.deepEqual(loaded.warnings, ['environment FERRY_HOME: unknown setting; did you mean FERRY_ANONYMOUS_HOME?']);
});

test('paths from flags and the environment are relative to the current folder, paths in the file to the file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-paths-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'etc'));
  await mkdir(path.join(dir, 'etc', 'files'));
  await mkdir(path.join(dir, 'other'));
  // controlSocket too: the server and `ferry ban`, started from other folders, must find the same socket.
  await writeFile(path.join(dir, 'etc', 'ferry.yaml'), 'storage:\n  root: files\ncontrolSocket: run/ferry.sock\n');
  const cwd = process.cwd();
  process.chdir(dir);
  t.after(() => process.chdir(cwd));
  const fromFile = await loadConfig({ file: 'etc/ferry.yaml' });
  assert.equal(storageLocation(fromFile.config.storage), path.join(dir, 'etc', 'files'));
  assert.equal(fromFile.config.controlSocket, path.join(dir, 'etc', 'run', 'ferry.sock'));
  const fromFlag = await loadConfig({ file: 'etc/ferry.yaml', overrides: [{ path: ['storage', 'root'], value: 'other', source: '--root' }] });
  assert.equal(storageLocation(fromFlag.config.storage), path.join(dir, 'other'));
  const fromEnv = await loadConfig({ file: 'etc/ferry.yaml', env: { FERRY_USERS_FILE: 'users.yaml' } });
  assert.equal(fromEnv.config.users.file, path.join(dir, 'users.yaml'));
});

test('a symlinked root cannot hide a users file inside it', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-link-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'data'));
  await symlink('data', path.join(dir, 'link'));
  await writeFile(path.join(dir, 'ferry.yaml'), 'storage:\n  root: link\nusers:\n  file: data/users.yaml\n');
  await assert.rejects(loadConfig({ file: path.join(dir, 'ferry.yaml') }), /is inside storage\.root/);
});

test('every S3 example in docs/s3.md is a valid storage section', async (t) => {
  const doc = await readFile('docs/s3.md', 'utf8');
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => b.includes('type: s3'));
  assert.ok(blocks.length >= 4, 'a generic example plus AWS, MinIO and R2');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-s3doc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const block of blocks) {
    const file = path.join(dir, 'ferry.yaml');
    await writeFile(file, block.replaceAll('<ACCOUNT_ID>', 'account'));
    const { config } = await loadConfig({ file });
    assert.equal(config.storage.type, 's3', block);
  }
  await writeFile(path.join(dir, 'bad.yaml'), 'storage:\n  type: s3\n  prefix: x/\n  partSizeBytes: 1000\n');
  await assert.rejects(loadConfig({ file: path.join(dir, 'bad.yaml') }), (err: ConfigError) => {
    assert.deepEqual(err.problems, [
      'bad.yaml:1: storage.bucket: missing; expected a bucket name (3-63 lowercase letters, digits, dots and dashes)',
      'bad.yaml:4: storage.partSizeBytes: 1000 is not a whole number from 5242880 to 536870912',
    ]);
    return true;
  });
  // 100 GiB in 10,000 parts needs parts of at least 10.24 MiB: said at load time, not at part 10,001.
  await writeFile(path.join(dir, 'unreachable.yaml'), 'limits:\n  maxFileSizeBytes: 107374182400\n  perUser: { maxFileSizeBytes: 1000 }\nstorage:\n  type: s3\n  bucket: drops\n');
  await assert.rejects(loadConfig({ file: path.join(dir, 'unreachable.yaml') }), (err: ConfigError) => {
    assert.deepEqual(err.problems, [
      'unreachable.yaml:2: limits.maxFileSizeBytes: 107374182400 is not reachable with partSizeBytes 8388608 (S3 allows 10,000 parts: 83886080000 bytes); set partSizeBytes to at least 11534336',
    ]);
    return true;
  });
  await writeFile(path.join(dir, 'unreachable-user.yaml'), 'limits:\n  perUser: { maxFileSizeBytes: 107374182400 }\nstorage:\n  type: s3\n  bucket: drops\n  partSizeBytes: 11534336\n');
  await loadConfig({ file: path.join(dir, 'unreachable-user.yaml') });
  // The old S3 key is refused with the way out, not ignored.
  await writeFile(path.join(dir, 'moved.yaml'), 'storage:\n  type: s3\n  bucket: drops\n  maxFileSizeBytes: 1000\n');
  await assert.rejects(loadConfig({ file: path.join(dir, 'moved.yaml') }), (err: ConfigError) => {
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0]!, /^moved\.yaml:4: storage\.maxFileSizeBytes: .*set limits\.maxFileSizeBytes \(all users\) or limits\.perUser\.maxFileSizeBytes instead/);
    return true;
  });
});

test('masqueradeAddress: an address, a host name or rules by client network; each problem names the rule and the field (issue 12)', async () => {
  const rules = 'masqueradeAddress:\n  - from: [10.0.0.0/8, "2001:db8::/32"]\n    announce: connected\n  - from: 192.168.0.0/16\n    announce: 192.168.1.10\n  - announce: ftp.example.com\n';
  assert.deepEqual((await withFile(rules)).loaded.config.masqueradeAddress, [
    { from: ['10.0.0.0/8', '2001:db8::/32'], announce: 'connected' },
    { from: '192.168.0.0/16', announce: '192.168.1.10' },
    { from: undefined, announce: 'ftp.example.com' },
  ]);
  assert.equal((await withFile('masqueradeAddress: ftp.example.com\n')).loaded.config.masqueradeAddress, 'ftp.example.com');
  assert.equal((await withFile('banner: x\n', { env: { FERRY_MASQUERADE_ADDRESS: 'dyn.example.net' } })).loaded.config.masqueradeAddress, 'dyn.example.net');
  const cases: Array<[string, string]> = [
    ['masqueradeAddress: 300.1.1.1\n', 'ferry.yaml:1: masqueradeAddress: "300.1.1.1" is not an IPv4 address, a host name, or connected (PASV can only announce IPv4)'],
    ['masqueradeAddress:\n  - from: 10.0.0.0/33\n    announce: 10.0.0.5\n', 'ferry.yaml:2: masqueradeAddress.0.from: "10.0.0.0/33" is not an IP address or CIDR range like 192.168.1.0/24'],
    ['masqueradeAddress:\n  - announce: connected\n  - from: [10.0.0.0/8, ten]\n    announce: 10.0.0.5\n', 'ferry.yaml:3: masqueradeAddress.1.from.1: "ten" is not an IP address or CIDR range like 192.168.1.0/24'],
    ['masqueradeAddress:\n  - from: 10.0.0.0/8\n', 'ferry.yaml:2: masqueradeAddress.0.announce: missing; expected an IPv4 address, a host name, or connected (PASV can only announce IPv4)'],
    ['masqueradeAddress:\n  - from: 10.0.0.0/8\n    anounce: connected\n', 'ferry.yaml:3: masqueradeAddress.0.anounce: unknown setting; did you mean "announce"?'],
    ['masqueradeAddress:\n  from: 10.0.0.0/8\n  announce: connected\n', 'ferry.yaml:2: masqueradeAddress: a mapping is not an IPv4 address, a host name, or connected (PASV can only announce IPv4), or a list of rules (each "- from: RANGE" and "announce: ADDRESS")'],
  ];
  for (const [text, expected] of cases) {
    const problems = await problemsOf(text);
    // A misspelt key also leaves announce missing; the first problem is the one to read.
    assert.equal(problems[0], expected, JSON.stringify(text));
  }
});

test('settings that are valid but weaken a protection or can never apply are warned about', async () => {
  const warned = async (text: string) => (await withFile(text)).loaded.warnings;
  assert.deepEqual(await warned('port: 2121\n'), []);
  assert.match((await warned('proxyProtocol:\n  trustedSources: [0.0.0.0/0]\n'))[0] ?? '', /^proxyProtocol\.trustedSources: 0\.0\.0\.0\/0 trusts every address/);
  assert.match(
    (await warned('defender:\n  scores: { loginFailed: 0, limitExceeded: 0, protocolAbuse: 0 }\n'))[0] ?? '',
    /^defender\.scores: every score is 0, so the defender never bans anyone/,
  );
  assert.match(
    (await warned('masqueradeAddress:\n  - announce: 203.0.113.7\n  - from: [10.0.0.0/8]\n    announce: connected\n'))[0] ?? '',
    /^masqueradeAddress: rule 1 has no from: and matches every client, so the 1 rule\(s\) after it never apply; put it last$/,
  );
  assert.deepEqual(await problemsOf('masqueradeAddress: 0.0.0.0\n').then((p) => p.length), 1, '0.0.0.0 is refused');
});

test('every key of limits, defender and proxyProtocol, and uploadSha256, set in a file reaches the server\'s settings (none validates and stays unused)', async () => {
  const { resolveOptions } = await import('../../src/server/options.js');
  const { serverOptions } = await import('../../src/config/build.js');
  const defaults = (await withFile('port: 2121\n')).loaded.config as unknown as Record<string, Record<string, unknown>>;
  const keys = leafPaths(configSchema).filter((p) => ['limits', 'defender', 'proxyProtocol', 'uploadSha256'].includes(p[0]!));
  assert.ok(keys.length > 25, `the sections have their keys (${keys.length})`);
  for (const keyPath of keys) {
    // A value other than the default, valid for the key: a number one higher (or 2 for a ratio), true/false flipped, a list of one address.
    let at: Record<string, unknown> = defaults;
    for (const key of keyPath.slice(0, -1)) at = at[key] as Record<string, unknown>;
    const current = at[keyPath[keyPath.length - 1]!];
    const value = typeof current === 'number' ? current + 1 : typeof current === 'boolean' ? !current : ['192.0.2.0/24'];
    let yaml = '';
    keyPath.forEach((key, depth) => (yaml += `${'  '.repeat(depth)}${key}:${depth === keyPath.length - 1 ? ` ${JSON.stringify(value)}` : ''}\n`));
    if (keyPath.join('.') === 'defender.banMs') yaml += '  maxBanMs: 86400000\n';
    const { config } = (await withFile(yaml)).loaded;
    const resolved = resolveOptions({ ...serverOptions(config), authenticator: { authenticate: async () => null } }) as unknown as Record<string, unknown>;
    // Where each section lands in the resolved options: limits flat, perUser in perUserLimits, the others by name.
    const [section, ...rest] = keyPath;
    let got: unknown = section === 'limits' ? (rest[0] === 'perUser' ? (resolved['perUserLimits'] as Record<string, unknown>)[rest[1]!] : resolved[rest[0]!]) : resolved[section!];
    if (section !== 'limits') for (const key of rest) got = (got as Record<string, unknown>)[key];
    assert.deepEqual(got, value, `${keyPath.join('.')}: set to ${JSON.stringify(value)} in the file, ${JSON.stringify(got)} in the server's settings`);
  }
});
