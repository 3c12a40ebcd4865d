"""pyftpdlib peer for Ferry's benchmark: started by bench/peers/peers.ts.

Usage: python3 pyftpdlib-server.py CONFIG.json  (PYTHONPATH = the unpacked python3-pyftpdlib)
CONFIG: {"host", "port", "root", "user", "hash", "passivePorts": [min, max], "maxClients"}
"hash" is "scrypt$N$r$p$salt_b64$key_b64": the password itself is never written anywhere.
The server is pyftpdlib's default single-process async FTPServer (as `python -m pyftpdlib`).
"""
import base64
import hashlib
import hmac
import json
import logging
import sys

from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.log import config_logging
from pyftpdlib.servers import FTPServer


class ScryptAuthorizer(DummyAuthorizer):
    """DummyAuthorizer whose stored 'password' is an scrypt hash."""

    def validate_authentication(self, username, password, handler):
        if not self.has_user(username):
            raise AuthenticationFailed("Authentication failed.")
        _, n, r, p, salt, key = self.user_table[username]["pwd"].split("$")
        want = base64.b64decode(key)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                             n=int(n), r=int(r), p=int(p), dklen=len(want),
                             maxmem=256 * int(r) * int(n) + 1024 * 1024)
        if not hmac.compare_digest(got, want):
            raise AuthenticationFailed("Authentication failed.")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    config_logging(level=logging.ERROR)  # no per-command / transfer logging

    authorizer = ScryptAuthorizer()
    authorizer.add_user(cfg["user"], cfg["hash"], cfg["root"], perm="elradfmwMT")

    handler = FTPHandler
    handler.authorizer = authorizer
    handler.banner = "pyftpdlib ready."
    lo, hi = cfg["passivePorts"]
    handler.passive_ports = list(range(lo, hi + 1))
    handler.masquerade_address = None  # bound to 127.0.0.1: PASV already answers with it

    server = FTPServer((cfg["host"], cfg["port"]), handler)
    server.max_cons = cfg["maxClients"]
    server.max_cons_per_ip = cfg["maxClients"]
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
