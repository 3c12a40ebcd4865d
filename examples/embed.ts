/**
 * Embedding Ferry: an FTP endpoint inside a Node service, with your own
 * Authenticator and your own Storage.
 *
 *   npx tsx examples/embed.ts        # then: curl -u camera:secret -T photo.jpg ftp://127.0.0.1:2121/
 *
 * (In your own project, import from 'ferry-ftp' instead of '../src/index.js'.)
 */
import { Readable } from 'node:stream';
import {
  createServer,
  MemoryStorage,
  type Account,
  type Authenticator,
  type AuthRequest,
  type FileInfo,
  type Storage,
  type WriteOptions,
} from '../src/index.js';

/** Your user database: here a Map; in real life SQL, LDAP, an HTTP call... */
class DeviceAuthenticator implements Authenticator {
  readonly #devices = new Map([['camera', 'secret']]);
  readonly #storage: Storage;

  constructor(storage: Storage) {
    this.#storage = storage;
  }

  async authenticate({ username, password }: AuthRequest): Promise<Account | null> {
    if (this.#devices.get(username) !== password) return null;
    // Devices may upload and list, but not read back, delete or rename.
    return { username, storage: this.#storage, permissions: 'elmw' };
  }
}

/**
 * A Storage is a small interface; wrapping one is the quickest way to add a
 * rule. This one refuses names that are not images and delegates the rest.
 */
class ImagesOnly implements Storage {
  readonly #inner: Storage;
  readonly capabilities;

  constructor(inner: Storage) {
    this.#inner = inner;
    this.capabilities = inner.capabilities;
  }

  stat(path: string): Promise<FileInfo> {
    return this.#inner.stat(path);
  }
  list(path: string): AsyncIterable<readonly FileInfo[]> {
    return this.#inner.list(path);
  }
  read(path: string, options?: { start?: number }): Promise<Readable> {
    return this.#inner.read(path, options);
  }
  async write(path: string, options?: WriteOptions) {
    if (!/\.(jpe?g|png)$/i.test(path)) {
      const err = new Error('only images') as NodeJS.ErrnoException;
      err.code = 'EACCES'; // becomes "550 Permission denied."
      throw err;
    }
    return this.#inner.write(path, options);
  }
  mkdir(path: string) {
    return this.#inner.mkdir(path);
  }
  rmdir(path: string) {
    return this.#inner.rmdir(path);
  }
  delete(path: string) {
    return this.#inner.delete(path);
  }
  rename(from: string, to: string) {
    return this.#inner.rename(from, to);
  }
}

export async function startExample(port = 2121, host = '127.0.0.1') {
  const storage = new ImagesOnly(new MemoryStorage());
  const server = createServer({ authenticator: new DeviceAuthenticator(storage), host, port });
  server.on('file-received', ({ username, path, bytes }) => {
    console.log(`${username} uploaded ${path} (${bytes} bytes): start the pipeline here`);
  });
  await server.listen();
  return server;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startExample();
  console.log(`Listening on port ${server.address()!.port}; log in as camera / secret.`);
  process.on('SIGINT', () => void server.close().then(() => process.exit(0)));
}
