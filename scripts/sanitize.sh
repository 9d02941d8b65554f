#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer (with LeakSanitizer, its
# default on Linux) on the nightly toolchain.
#
#   scripts/sanitize.sh [cargo test args...]
#
# The binary is built without mimalloc here so every allocation goes
# through the sanitizer's malloc. Build outputs go to target/asan.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes"
export POGOCACHE_SANITIZER=asan
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1"
exec cargo +nightly test --workspace --no-default-features --target "$host" \
    --target-dir target/asan --lib --tests --bins "$@"
