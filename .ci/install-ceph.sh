#!/usr/bin/env bash
# Ceph's S3 gateway (radosgw) and the monitor and OSD it needs, from Debian:
# the S3 tests run Ferry against a throwaway one-node cluster of these
# (test/helpers/ceph.ts). Idempotent: installs only what is missing.
set -euo pipefail

missing=()
command -v radosgw >/dev/null || missing+=(radosgw)
command -v ceph-mon >/dev/null || missing+=(ceph-mon)
command -v ceph-osd >/dev/null || missing+=(ceph-osd)
# radosgw-admin, monmaptool and ceph come with the packages above (ceph-common).
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
