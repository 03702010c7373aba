#!/usr/bin/env bash
# A Debian bookworm base image made on this machine, for building the container stack
# where no image registry is reachable (the stack's images take it as their base with
# STREAMING_IMAGES=local; see docs/streaming-stack.md).
#
#   scripts/docker-base-image.sh [IMAGE]     default IMAGE: local/debian:bookworm
#
# Once per machine: mmdebstrap writes a minbase root file system as a tar (about 70 s,
# 160 MB, from the machine's configured Debian mirror) under $STREAMPLANE_CACHE_DIR (default
# ~/.cache/streamplane), and `docker import` turns it into IMAGE. Later calls find the
# image (nothing to do) or the tar (import only). Needs root for mmdebstrap's root mode.
set -euo pipefail

image=${1:-${STREAMING_BASE_IMAGE:-local/debian:bookworm}}
cache=${STREAMPLANE_CACHE_DIR:-$HOME/.cache/streamplane}
suite=bookworm
tar="$cache/debian-$suite-minbase.tar"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { echo "docker-base-image: $*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if [[ ! -s $tar ]]; then
  if ! command -v mmdebstrap >/dev/null; then
    say "mmdebstrap is missing: apt-get install mmdebstrap (or run scripts/setup-system.sh as root)"
    exit 1
  fi
  mkdir -p "$cache"
  say "making $tar with mmdebstrap ($suite, minbase)"
  # The image's own apt sources point at the plain-HTTP archive, which containers reach.
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    "$suite" "$tar.partial" "deb $mirror $suite main" "deb $mirror $suite-updates main" \
    "deb ${mirror%/debian}/debian-security $suite-security main"
  mv "$tar.partial" "$tar"
fi
say "importing $tar as $image"
docker import --change 'CMD ["/bin/bash"]' "$tar" "$image" >/dev/null
