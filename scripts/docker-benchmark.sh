#!/usr/bin/env bash
# `scripts/docker-build.sh --benchmark`: measures, on this machine and in one
# run, the naive single-stage baseline (Dockerfile.naive) against our
# multi-stage Dockerfile:
#   - clean build (build cache and cache mounts pruned first),
#   - code-change rebuild (one source file edited),
#   - dependency-change rebuild (a crate manifest gains a dependency),
#   - image sizes,
# and prints the Docker guide's two tables with the numbers measured here.
# Builds run in a scratch copy of the tracked files, so the work tree is
# never touched. Set BENCH_NETWORK=none to prove the builds are hermetic.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1
net=()
[ -n "${BENCH_NETWORK:-}" ] && net=(--network "$BENCH_NETWORK")

src=$(mktemp -d -t pogocache-bench.XXXXXX)
trap 'rm -rf "$src"' EXIT
git ls-files -z | xargs -0 -I{} cp --parents {} "$src"/

seconds() { # label dockerfile tag
  local t0 t1
  t0=$(date +%s.%N)
  $DOCKER build "${net[@]}" --progress plain -f "$src/$2" -t "$3" "$src" >"$src/.build-$1.log" 2>&1 \
    || { tail -30 "$src/.build-$1.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

code_change() { echo "// benchmark edit $(date +%s%N)" >>"$src/crates/server/src/lib.rs"; }
dep_change() {
  # A new dependency edge (already in the lock file's crate set, so the
  # build stays offline-capable); the lock file is refreshed offline.
  if ! grep -q '^libc' "$src/crates/loadgen/Cargo.toml"; then
    sed -i 's/^mio.workspace = true/mio.workspace = true\nlibc.workspace = true/' "$src/crates/loadgen/Cargo.toml"
  else
    sed -i '/^libc.workspace = true/d' "$src/crates/loadgen/Cargo.toml"
  fi
  (cd "$src" && cargo update --workspace --offline -q)
}
reset_tree() { rm -rf "$src"/{crates,Cargo.toml,Cargo.lock}; git ls-files -z | xargs -0 -I{} cp --parents {} "$src"/; }

prune() { $DOCKER builder prune -af >/dev/null 2>&1 || true; }

echo "naive: clean build..." >&2
prune
naive_clean=$(seconds naive-clean Dockerfile.naive pogocache-bench:naive)
code_change
echo "naive: code change..." >&2
naive_code=$(seconds naive-code Dockerfile.naive pogocache-bench:naive)
dep_change
echo "naive: dependency change..." >&2
naive_dep=$(seconds naive-dep Dockerfile.naive pogocache-bench:naive)
naive_size=$($DOCKER image inspect -f '{{.Size}}' pogocache-bench:naive)

reset_tree
echo "optimized: clean build..." >&2
prune
opt_clean=$(seconds opt-clean Dockerfile pogocache-bench:opt)
code_change
echo "optimized: code change..." >&2
opt_code=$(seconds opt-code Dockerfile pogocache-bench:opt)
dep_change
echo "optimized: dependency change..." >&2
opt_dep=$(seconds opt-dep Dockerfile pogocache-bench:opt)
opt_size=$($DOCKER image inspect -f '{{.Size}}' pogocache-bench:opt)
$DOCKER rmi pogocache-bench:naive pogocache-bench:opt >/dev/null 2>&1 || true

# "61% faster" / "7% slower" from a before and an after figure.
pct() {
  local p
  p=$(echo "scale=4; (1 - $2 / $1) * 100" | bc)
  if [ "$(echo "$p >= 0" | bc)" = 1 ]; then printf '%.1f%% %s' "$p" "${3:-faster}"; else printf '%.1f%% %s' "$(echo "-1 * $p" | bc)" "${4:-slower}"; fi
}
mb() { echo "scale=2; $1 / 1000000" | bc; }
printf '\n### Build time (this machine, %s cores)\n\n' "$(nproc)"
printf '| Scenario | Without optimization | With optimization | Improvement |\n|---|---|---|---|\n'
printf '| Clean build | %.1f s | %.1f s | %s |\n' "$naive_clean" "$opt_clean" "$(pct "$naive_clean" "$opt_clean")"
printf '| Code change only | %.1f s | %.1f s | %s |\n' "$naive_code" "$opt_code" "$(pct "$naive_code" "$opt_code")"
printf '| Dependency change | %.1f s | %.1f s | %s |\n' "$naive_dep" "$opt_dep" "$(pct "$naive_dep" "$opt_dep")"
printf '\n### Image size\n\n| Stage | Base image | Final size | Reduction |\n|---|---|---|---|\n'
printf '| Naive (Dockerfile.naive) | rust:1.95-slim-bookworm | %s MB | - |\n' "$(mb "$naive_size")"
printf '| Optimized (runtime) | scratch | %s MB | %s |\n' "$(mb "$opt_size")" "$(pct "$naive_size" "$opt_size" smaller larger)"
printf '\n{"naive":{"clean":%s,"code":%s,"dep":%s,"size":%s},"optimized":{"clean":%s,"code":%s,"dep":%s,"size":%s}}\n' \
  "$naive_clean" "$naive_code" "$naive_dep" "$naive_size" "$opt_clean" "$opt_code" "$opt_dep" "$opt_size"
