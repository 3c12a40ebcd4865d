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
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isSeq, parseDocument, YAMLMap, type Document } from 'yaml';
import { z } from 'zod';
import { addressList } from '../auth/user-list.js';
import { isPasswordHash } from '../auth/password.js';
import { homePath, permissionSpec, wholeNumber } from './schema.js';
import { ConfigError, parseYaml, validate } from './validate.js';

export const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;
const USERNAME_HELP = 'a user name of 1-64 letters, digits and . _ @ + - (starting with a letter or digit)';

const cidr = z.string({ error: 'an IP address or CIDR range like 192.168.1.0/24' }).refine(
  (v) => {
    try {
      addressList([v]);
      return true;
    } catch {
      return false;
    }
  },
  { error: 'an IP address or CIDR range like 192.168.1.0/24' },
);

export const userSchema = z.strictObject({
  passwordHash: z
    .string({ error: 'a password hash (scrypt, bcrypt or argon2id; make one with `ferry hash-password`)' })
    .refine(isPasswordHash, { error: 'a password hash (scrypt, bcrypt or argon2id; make one with `ferry hash-password`)' }),
  home: homePath().default('/{username}'),
  permissions: permissionSpec().default('read'),
  directories: z.record(homePath(), permissionSpec()).default({}),
  allowFrom: z.array(cidr, { error: 'a list of IP addresses or CIDR ranges' }).optional(),
  disabled: z.boolean({ error: 'true or false' }).default(false),
  limits: z
    .strictObject({
      maxSessions: wholeNumber(0).default(0),
      downloadBytesPerSecond: wholeNumber(0).default(0),
      uploadBytesPerSecond: wholeNumber(0).default(0),
      quotaBytes: wholeNumber(0).default(0),
    })
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

/** The users file as an editable document; a missing file starts empty. */
export async function openUsersFile(file: string): Promise<UsersDocument> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw new ConfigError([`${file}: cannot read the users file (${err.code ?? err.message})`]);
  });
  // Validate what is there first: never rewrite a file we misread.
  const { value, source } = parseYaml(path.basename(file), text);
  validate(usersFileSchema, value, source);
  const doc = parseDocument(text || 'users: {}\n');
  if (!isMap(doc.get('users'))) doc.set('users', new YAMLMap());
  return new UsersDocument(file, doc);
}

export class UsersDocument {
  constructor(
    readonly file: string,
    readonly doc: Document,
  ) {}

  #users(): YAMLMap {
    return this.doc.get('users') as YAMLMap;
  }

  names(): string[] {
    return this.#users().items.map((pair) => String((pair.key as { value?: unknown })?.value ?? pair.key));
  }

  has(name: string): boolean {
    return this.#users().has(name);
  }

  get(name: string): UserEntry | undefined {
    const node: unknown = this.#users().get(name, true);
    return isMap(node) ? userSchema.parse(node.toJSON()) : undefined;
  }

  /** Set (some) fields of a user, creating it if needed; the result is validated before it is kept. */
  set(name: string, fields: Partial<UserInput>): void {
    if (!USERNAME.test(name)) throw new ConfigError([`"${name}" is not ${USERNAME_HELP}`]);
    const users = this.#users();
    if (!users.has(name)) users.set(name, this.doc.createNode({}));
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const node = this.doc.createNode(value);
      // Lists of addresses read better inline.
      if (isSeq(node)) node.flow = true;
      this.doc.setIn(['users', name, key], node);
    }
    validate(userSchema, (users.get(name, true) as unknown as YAMLMap).toJSON(), null);
  }

  delete(name: string): boolean {
    return this.#users().delete(name);
  }

  /** Replace the file atomically (temp file, fsync, rename), mode 0600. */
  async save(): Promise<void> {
    const temp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      // lineWidth 0: never fold a long hash over two lines.
      await handle.writeFile(this.doc.toString({ lineWidth: 0 }));
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
