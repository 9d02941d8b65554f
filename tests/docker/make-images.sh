#!/usr/bin/env bash
# Test tooling for machines whose Docker engine cannot pull (like CI here):
# makes the Dockerfile's default base images locally, under their standard
# tags, so the Dockerfile stays the ordinary one an online user builds.
#
#   debian:bookworm-slim       debootstrap (minbase) of Debian bookworm
#   rust:1.95-slim-bookworm    the same plus gcc and libc6-dev, this
#                              machine's Rust toolchain under the official
#                              image's paths, and the workspace's crates
#                              vendored with cargo pointed at them, so a
#                              `docker build --network none` works
#
# Idempotent: an image that exists (and, for the Rust one, was made for the
# current Cargo.lock) is kept. Needs root for debootstrap.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=${DOCKER:-/usr/bin/docker}
work=${POGOCACHE_IMAGE_WORK:-/var/tmp/pogocache-images}
mkdir -p "$work"

if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

rootfs() { # name, extra packages
  local dir="$work/$1"
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    echo "debootstrap $1 (${2:-minbase}) from $mirror" >&2
    debootstrap --variant=minbase ${2:+--include=$2} bookworm "$dir" "$mirror" >"$work/$1.log" 2>&1 \
      || { tail -20 "$work/$1.log" >&2; exit 1; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    touch "$dir/.complete"
  fi
  echo "$dir"
}

if ! $DOCKER image inspect debian:bookworm-slim >/dev/null 2>&1; then
  dir=$(rootfs debian)
  tar -C "$dir" --exclude=./.complete -c . | $DOCKER import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  echo "made debian:bookworm-slim" >&2
fi

lock=$(sha256sum Cargo.lock | cut -c1-16)
have=$($DOCKER image inspect -f '{{ index .Config.Labels "pogocache.lock" }}' rust:1.95-slim-bookworm 2>/dev/null || true)
if [ "$have" != "$lock" ]; then
  dir=$(rootfs rust gcc,libc6-dev,ca-certificates)
  sysroot=$(rustc --print sysroot)
  rm -rf "$dir/usr/local/rust" "$dir/usr/local/cargo"
  mkdir -p "$dir/usr/local/rust" "$dir/usr/local/cargo/bin"
  # The toolchain without its documentation (800 MB).
  cp -a "$sysroot/bin" "$sysroot/lib" "$sysroot/libexec" "$sysroot/etc" "$dir/usr/local/rust/"
  for b in cargo rustc rustdoc; do ln -s "/usr/local/rust/bin/$b" "$dir/usr/local/cargo/bin/$b"; done
  cargo vendor --quiet --locked --versioned-dirs "$dir/usr/local/cargo/vendor" >/dev/null
  cat > "$dir/usr/local/cargo/config.toml" <<'TOML'
# Offline test base image only: crates come from the vendored copy.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "/usr/local/cargo/vendor"

[net]
offline = true
TOML
  tar -C "$dir" --exclude=./.complete -c . | $DOCKER import \
    -c 'ENV CARGO_HOME=/usr/local/cargo' \
    -c 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV RUST_VERSION=1.95.0' \
    -c "LABEL pogocache.lock=$lock" \
    -c 'CMD ["bash"]' - rust:1.95-slim-bookworm >/dev/null
  echo "made rust:1.95-slim-bookworm (crates for Cargo.lock $lock)" >&2
fi
