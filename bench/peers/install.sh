#!/usr/bin/env bash
# Installs the peer FTP servers the benchmark runs beside Ferry, all on loopback:
#   vsftpd, pure-ftpd, python3-pyftpdlib  (Debian .debs, unpacked with dpkg -x: they
#                                          conflict as packages, so none is apt-installed)
#   ftp-srv                               (npm, bench/package.json)
# plus what logins need: system user ferrybench (password benchpass) for vsftpd and
# as the uid of pure-ftpd's virtual user, and a minimal PAM service for vsftpd.
# Idempotent: re-running skips what is already there (FORCE=1 re-downloads).
# Writes bench/.peers/manifest.json, which bench/peers/peers.ts reads.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS_DIR="$BENCH_DIR/.peers"
DEB_DIR="$PEERS_DIR/debs"
SYSROOT="$PEERS_DIR/root"
BENCH_USER="${BENCH_USER:-ferrybench}"
BENCH_PASSWORD="${BENCH_PASSWORD:-benchpass}"
BENCH_HOME="${BENCH_HOME:-$PEERS_DIR/ftproot}"
PAM_SERVICE="ferrybench-vsftpd"
PACKAGES=(vsftpd pure-ftpd python3-pyftpdlib)
START=$SECONDS

say() { printf '[peers/install] %s\n' "$*"; }
die() { printf '[peers/install] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (needs useradd, chpasswd, /etc/pam.d)"
for tool in apt-get apt-cache dpkg dpkg-deb dpkg-query ldd useradd chpasswd node npm python3 perl; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

mkdir -p "$DEB_DIR" "$SYSROOT"
[ "${FORCE:-0}" = 1 ] && rm -f "$PEERS_DIR"/.unpacked-*

APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed (is the Debian mirror reachable?)"
    APT_UPDATED=1
  fi
}

# fetch_unpack PKG: apt-get download PKG into DEB_DIR and dpkg -x it into SYSROOT.
fetch_unpack() {
  local pkg="$1" deb
  if [ -e "$PEERS_DIR/.unpacked-$pkg" ]; then
    say "$pkg: already unpacked ($(cat "$PEERS_DIR/.unpacked-$pkg"))"
    return
  fi
  apt_update
  rm -f "$DEB_DIR/${pkg}"_*.deb
  (cd "$DEB_DIR" && apt-get download -q "$pkg" >/dev/null 2>&1) \
    || die "apt-get download $pkg failed (apt-cache policy $pkg: $(apt-cache policy "$pkg" 2>/dev/null | grep Candidate | xargs))"
  deb="$(ls "$DEB_DIR/${pkg}"_*.deb | head -n1)"
  dpkg -x "$deb" "$SYSROOT" || die "dpkg -x $deb failed"
  dpkg-deb -f "$deb" Version > "$PEERS_DIR/.unpacked-$pkg"
  say "$pkg: downloaded and unpacked $(basename "$deb")"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# 1. The servers.
for pkg in "${PACKAGES[@]}"; do fetch_unpack "$pkg"; done

# 2. Shared-library dependencies the machine lacks (first alternative of each lib* Depends).
for pkg in vsftpd pure-ftpd; do
  deb="$(ls "$DEB_DIR/${pkg}"_*.deb 2>/dev/null | head -n1)"
  [ -n "$deb" ] || continue
  for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/ //g' | grep '^lib' || true); do
    installed "$dep" || fetch_unpack "$dep"
  done
done

LD_DIRS="$(find "$SYSROOT" -name '*.so*' \( -type f -o -type l \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd: || true)"
VSFTPD="$SYSROOT/usr/sbin/vsftpd"
PUREFTPD="$SYSROOT/usr/sbin/pure-ftpd"
PUREPW="$SYSROOT/usr/bin/pure-pw"
for bin in "$VSFTPD" "$PUREFTPD" "$PUREPW"; do
  [ -x "$bin" ] || die "$bin missing after unpack"
  missing="$(LD_LIBRARY_PATH="$LD_DIRS" ldd "$bin" | grep 'not found' || true)"
  [ -z "$missing" ] || die "$(basename "$bin") still lacks shared libraries: $missing"
done
say "shared libraries resolved (extra lib dirs: ${LD_DIRS:-none})"

PYTHONPATH_DIR="$SYSROOT/usr/lib/python3/dist-packages"
PYFTPDLIB_VERSION="$(PYTHONPATH="$PYTHONPATH_DIR" python3 -W ignore -c 'import pyftpdlib; print(pyftpdlib.__ver__)' 2>&1)" \
  || die "pyftpdlib does not import with $(python3 --version): $PYFTPDLIB_VERSION"

# 3. ftp-srv from npm.
if [ -f "$BENCH_DIR/node_modules/ftp-srv/package.json" ] && [ "${FORCE:-0}" != 1 ]; then
  say "ftp-srv: already in bench/node_modules"
else
  say "npm install --prefix bench"
  npm install --prefix "$BENCH_DIR" --no-audit --no-fund --loglevel=error >/dev/null \
    || die "npm install --prefix bench failed"
fi
FTPSRV_VERSION="$(node -p "require('$BENCH_DIR/node_modules/ftp-srv/package.json').version")"

# 4. Logins. vsftpd authenticates real system users through PAM.
mkdir -p "$BENCH_HOME"
if id "$BENCH_USER" >/dev/null 2>&1; then
  say "user $BENCH_USER exists (uid $(id -u "$BENCH_USER"))"
else
  useradd --no-create-home --home-dir "$BENCH_HOME" --shell /usr/sbin/nologin --user-group "$BENCH_USER" \
    || die "useradd $BENCH_USER failed"
  say "created system user $BENCH_USER (uid $(id -u "$BENCH_USER"))"
fi
echo "$BENCH_USER:$BENCH_PASSWORD" | chpasswd || die "chpasswd failed"
chown "$BENCH_USER:" "$BENCH_HOME"
say "password of $BENCH_USER set (shadow hash: $(getent shadow "$BENCH_USER" | cut -d: -f2 | cut -d'$' -f2 | sed 's/^y$/yescrypt/; s/^6$/sha512crypt/'))"

PAM_FILE="/etc/pam.d/$PAM_SERVICE"
cat > "$PAM_FILE" <<'EOF'
# Written by ferry bench/peers/install.sh: minimal PAM service for the benchmark's vsftpd.
auth     required pam_unix.so
account  required pam_unix.so
session  optional pam_permit.so
EOF
say "wrote $PAM_FILE"

# pure-ftpd's privilege-separated build drops its unprivileged half to this user.
if ! id _pure-ftpd >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin _pure-ftpd \
    || die "useradd _pure-ftpd failed"
  say "created system user _pure-ftpd (pure-ftpd privsep)"
fi

# 5. Manifest for peers.ts.
cat > "$PEERS_DIR/manifest.json" <<EOF
{
  "vsftpd": { "bin": "$VSFTPD", "version": "$(cat "$PEERS_DIR/.unpacked-vsftpd")", "pamService": "$PAM_SERVICE" },
  "pure-ftpd": { "bin": "$PUREFTPD", "purePw": "$PUREPW", "version": "$(cat "$PEERS_DIR/.unpacked-pure-ftpd")" },
  "pyftpdlib": { "pythonpath": "$PYTHONPATH_DIR", "version": "$PYFTPDLIB_VERSION", "deb": "$(cat "$PEERS_DIR/.unpacked-python3-pyftpdlib")", "python": "$(python3 --version | cut -d' ' -f2)" },
  "ftp-srv": { "version": "$FTPSRV_VERSION" },
  "ldLibraryPath": "$LD_DIRS",
  "user": "$BENCH_USER",
  "home": "$BENCH_HOME"
}
EOF
say "vsftpd $(cat "$PEERS_DIR/.unpacked-vsftpd"), pure-ftpd $(cat "$PEERS_DIR/.unpacked-pure-ftpd"), pyftpdlib $PYFTPDLIB_VERSION (deb $(cat "$PEERS_DIR/.unpacked-python3-pyftpdlib")), ftp-srv $FTPSRV_VERSION"
say "wrote $PEERS_DIR/manifest.json; done in $((SECONDS - START)) s"
