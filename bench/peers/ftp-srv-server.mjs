// ftp-srv peer for Ferry's benchmark: started by bench/peers/peers.ts.
// Usage: node bench/peers/ftp-srv-server.mjs CONFIG.json
// CONFIG: {"host", "port", "root", "user", "hash", "passivePorts": [min, max]}
// "hash" is "scrypt$N$r$p$salt_b64$key_b64"; it is checked with async crypto.scrypt
// (libuv thread pool) in ftp-srv's `login` event. ftp-srv has no connection limits.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { scrypt, timingSafeEqual } from 'node:crypto';

const require = createRequire(import.meta.url);
const FtpSrv = require('ftp-srv');
// bunyan is ftp-srv's own logger dependency: resolve it next to ftp-srv, silence it.
const bunyan = createRequire(require.resolve('ftp-srv'))('bunyan');

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const [, n, r, p, salt, key] = cfg.hash.split('$');
const want = Buffer.from(key, 'base64');
const scryptOptions = { N: Number(n), r: Number(r), p: Number(p), maxmem: 256 * Number(r) * Number(n) + (1 << 20) };

function verify(password) {
  return new Promise((resolve) => {
    scrypt(String(password), Buffer.from(salt, 'base64'), want.length, scryptOptions, (err, got) => {
      resolve(!err && timingSafeEqual(got, want));
    });
  });
}

const server = new FtpSrv({
  url: `ftp://${cfg.host}:${cfg.port}`,
  pasv_url: cfg.host,
  pasv_min: cfg.passivePorts[0],
  pasv_max: cfg.passivePorts[1],
  anonymous: false,
  greeting: 'ftp-srv ready.',
  log: bunyan.createLogger({ name: 'ftp-srv', level: 'fatal' }),
});

server.on('login', ({ username, password }, resolve, reject) => {
  const userOk = username === cfg.user;
  verify(password).then((passOk) => {
    if (userOk && passOk) resolve({ root: cfg.root });
    else reject(new Error('Authentication failed.'));
  });
});

server.on('client-error', () => {});

server.listen().catch((err) => {
  console.error(`ftp-srv: cannot listen on ${cfg.host}:${cfg.port}: ${err.message}`);
  process.exit(1);
});
