/**
 * The users file (YAML or JSON): one entry per user under `users:`.
 *
 *   users:
 *     alice:
 *       passwordHash: "$scrypt$ln=15,r=8,p=1$..."
 *       home: /alice
 *       permissions: full
 *
 * Reading validates it with the same file:line messages as the config.
 * Editing (`ferry user ...`) keeps the operator's comments and layout, and
 * replaces the file atomically with mode 0600: a crash mid-write leaves the
 * old file, and no other local user can read the hashes.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, YAMLMap, type Document, type Pair } from 'yaml';
import { z } from 'zod';
import { TLS_POLICIES } from '../tls/options.js';
import { isPasswordHash } from '../auth/password.js';
import { USERNAME, USERNAME_HELP } from '../auth/username.js';
import { PER_USER_LIMITS, type NumberSetting, type PerUserLimitName } from '../defaults.js';
import { addressRange, homePath, permissionSpec, wholeNumber } from './schema.js';
import { ConfigError, parseYaml, validate } from './validate.js';

export const userSchema = z.strictObject({
  passwordHash: z
    .string({ error: 'a password hash (scrypt, bcrypt or argon2id; make one with `ferry hash-password`)' })
    .refine(isPasswordHash, { error: 'a password hash (scrypt, bcrypt or argon2id; make one with `ferry hash-password`)' }),
  home: homePath().default('/{username}'),
  permissions: permissionSpec().default('read'),
  directories: z.record(homePath(), permissionSpec()).default({}),
  allowFrom: z.array(addressRange(), { error: 'a list of IP addresses or CIDR ranges' }).optional(),
  disabled: z.boolean({ error: 'true or false' }).default(false),
  tls: z.enum(TLS_POLICIES, { error: `one of ${TLS_POLICIES.join(', ')}` }).optional(),
  // Each key optional: absent means the server's `limits.perUser` value, 0 means no limit.
  limits: z
    .strictObject(
      Object.fromEntries(Object.entries<NumberSetting>(PER_USER_LIMITS).map(([name, s]) => [name, wholeNumber(s.min, s.max).optional()])) as Record<
        PerUserLimitName,
        z.ZodOptional<z.ZodNumber>
      >,
      { error: 'a mapping of limits (maxSessions, downloadBytesPerSecond, uploadBytesPerSecond, quotaBytes, quotaFiles, maxFileSizeBytes)' },
    )
    .optional(),
});

const usersFileSchema = z.strictObject({
  users: z
    .record(z.string().regex(USERNAME, { error: USERNAME_HELP }), userSchema, { error: 'a mapping of user names to their settings' })
    .nullable()
    .transform((users) => users ?? {})
    .prefault({}),
});

export type UserEntry = z.output<typeof userSchema>;
export type UserInput = z.input<typeof userSchema>;

/** Read and validate a users file; a missing file is an error naming it. */
export async function readUsersFile(file: string): Promise<Record<string, UserEntry>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read the users file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); create it with \`ferry user add\``]);
  }
  const { source, value } = parseYaml(path.basename(file), text);
  return validate(usersFileSchema, value, source).users;
}

/**
 * The users file as an editable document. A missing file starts empty when
 * `create` is set (user add) and is an error otherwise (a mistyped path must
 * not look like a file without users).
 */
export async function openUsersFile(file: string, options: { create?: boolean } = {}): Promise<UsersDocument> {
  // Edit the file a symlink points to, rather than replacing the link.
  const real = await realpath(file).catch(() => file);
  const text = await readFile(real, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && options.create) return '';
    throw new ConfigError([`${file}: cannot read the users file (${err.code ?? err.message})${err.code === 'ENOENT' ? '; create it with `ferry user add`' : ''}`]);
  });
  // Validate what is there first: never rewrite a file we misread.
  const { value, source } = parseYaml(path.basename(file), text);
  validate(usersFileSchema, value, source);
  const doc = parseDocument(text || 'users:\n');
  const users = doc.get('users');
  if (!isMap(users)) doc.set('users', new YAMLMap());
  // An empty `users: {}` would keep every user on one line.
  else if (users.items.length === 0) users.flow = false;
  const json = real.endsWith('.json') || text.trimStart().startsWith('{');
  return new UsersDocument(real, doc, json);
}

export class UsersDocument {
  constructor(
    readonly file: string,
    readonly doc: Document,
    /** Written back as JSON (a JSON file stays JSON); YAML otherwise, comments kept. */
    readonly json: boolean,
  ) {}

  #users(): YAMLMap {
    return this.doc.get('users') as YAMLMap;
  }

  /** Keys are compared as text: a hand-written `123:` is user "123". */
  #pair(name: string): Pair | undefined {
    return this.#users().items.find((pair) => keyText(pair) === name);
  }

  names(): string[] {
    return this.#users().items.map(keyText);
  }

  has(name: string): boolean {
    return this.#pair(name) !== undefined;
  }

  get(name: string): UserEntry | undefined {
    const node = this.#pair(name)?.value;
    return isMap(node) ? userSchema.parse(node.toJSON()) : undefined;
  }

  /** Set (some) fields of a user, creating it if needed; the result is validated before it is kept. */
  set(name: string, fields: Partial<UserInput>): void {
    if (!USERNAME.test(name)) throw new ConfigError([`"${name}" is not ${USERNAME_HELP}`]);
    let pair = this.#pair(name);
    if (!pair) {
      pair = this.doc.createPair(name, {}) as Pair;
      this.#users().items.push(pair);
    }
    const user = pair.value as YAMLMap;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const node = this.doc.createNode(value);
      // Lists of addresses read better inline.
      if (isSeq(node)) node.flow = true;
      user.set(key, node);
    }
    validate(userSchema, user.toJSON(), null);
  }

  delete(name: string): boolean {
    const pair = this.#pair(name);
    if (!pair) return false;
    this.#users().items.splice(this.#users().items.indexOf(pair), 1);
    return true;
  }

  /**
   * Replace the file atomically: a temporary file in the same folder, fsync,
   * rename. An existing file keeps its owner and group (so a server that
   * dropped privileges can still read it on reload) and its mode, without
   * any bit for others; a new file is 0600, owned by `newOwner` if given.
   */
  async save(newOwner?: { uid: number; gid: number }): Promise<void> {
    const existing = await stat(this.file).catch(() => null);
    const temp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      // lineWidth 0: never fold a long hash over two lines.
      await handle.writeFile(this.json ? JSON.stringify(this.doc.toJS(), null, 2) + '\n' : this.doc.toString({ lineWidth: 0 }));
      await handle.chmod(existing ? existing.mode & 0o660 : 0o600);
      const owner = existing ?? newOwner;
      if (owner && process.getuid?.() === 0) await handle.chown(owner.uid, owner.gid);
      await handle.sync();
    } catch (err) {
      await handle.close();
      await rm(temp, { force: true });
      throw err;
    }
    await handle.close();
    await rename(temp, this.file);
  }
}

function keyText(pair: Pair): string {
  return String(isScalar(pair.key) ? pair.key.value : pair.key);
}
