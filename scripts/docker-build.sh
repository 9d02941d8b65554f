#!/usr/bin/env bash
# Builds the pogocache-rs images (see DOCKER.md).
#
#   scripts/docker-build.sh                      runtime image  -> pogocache:latest
#   scripts/docker-build.sh --target development               -> pogocache:dev
#   scripts/docker-build.sh --target all                       -> both
#   scripts/docker-build.sh --benchmark          naive vs optimized, measured here
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'USAGE'
Usage: scripts/docker-build.sh [options]

  --target runtime|development|all   what to build                    (default: runtime)
  --tag NAME                          image name for the runtime target (default: pogocache:latest;
                                      development: pogocache:dev)
  --benchmark                         measure the naive single-stage baseline (Dockerfile.naive)
                                      against ours: clean build, code-change rebuild,
                                      dependency-change rebuild, image sizes
  --registry URL                      also tag/push to URL (or set REGISTRY_URL)
  --push-cache                        use URL/pogocache:buildcache as registry cache (needs buildx)
  --no-buildkit                       legacy builder (no cache mounts; slower rebuilds)
  --no-cache                          ignore every cache (also empties the cargo cache mounts)
  --parallel-jobs N                   cargo -j N inside the build
  --progress plain|auto|tty           BuildKit progress output          (default: auto)
  --platform LIST                     e.g. linux/amd64,linux/arm64 (buildx builds them together;
                                      without buildx each is built and a manifest list is made
                                      when pushing to --registry)
  --secret id=ID,src=PATH             pass a build secret (repeatable)
  --network MODE                      docker build --network (e.g. none for hermetic builds)
  -h, --help                          this text

Environment: DOCKER (client, default /usr/bin/docker when present), REGISTRY_URL,
RUST_IMAGE and DEV_IMAGE (base images, default the public rust/debian tags).
USAGE
}

target=runtime tag="" benchmark=0 registry=${REGISTRY_URL:-} push_cache=0 buildkit=1
no_cache=0 jobs=0 progress=auto platform="" network="" secrets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=$2; shift 2 ;;
    --target=*) target=${1#*=}; shift ;;
    --tag) tag=$2; shift 2 ;;
    --benchmark) benchmark=1; shift ;;
    --registry) registry=$2; shift 2 ;;
    --push-cache) push_cache=1; shift ;;
    --no-buildkit) buildkit=0; shift ;;
    --no-cache) no_cache=1; shift ;;
    --parallel-jobs) jobs=$2; shift 2 ;;
    --progress) progress=$2; shift 2 ;;
    --progress=*) progress=${1#*=}; shift ;;
    --platform) platform=$2; shift 2 ;;
    --secret) secrets+=("$2"); shift 2 ;;
    --network) network=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$target" in runtime|development|all) ;; *) echo "--target is runtime, development or all" >&2; exit 2 ;; esac

# A client that can run BuildKit: the first `docker` on PATH may lack buildx
# (BuildKit then refuses to start); Debian's /usr/bin/docker runs the
# engine's built-in BuildKit with DOCKER_BUILDKIT=1.
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
fi
[ -n "$DOCKER" ] || { echo "docker client not found" >&2; exit 1; }
has_buildx=0
$DOCKER buildx version >/dev/null 2>&1 && has_buildx=1
if [ $buildkit = 1 ]; then
  export DOCKER_BUILDKIT=1
  if ! DOCKER_BUILDKIT=1 $DOCKER build --help >/dev/null 2>&1; then
    echo "$DOCKER cannot run BuildKit; install buildx or use Debian's docker.io client, or pass --no-buildkit" >&2
    exit 1
  fi
else
  export DOCKER_BUILDKIT=0
fi

common=(--progress "$progress" --build-arg "PARALLEL_JOBS=$jobs")
[ $buildkit = 0 ] && common=(--build-arg "PARALLEL_JOBS=$jobs")
[ -n "${RUST_IMAGE:-}" ] && common+=(--build-arg "RUST_IMAGE=$RUST_IMAGE")
[ -n "${DEV_IMAGE:-}" ] && common+=(--build-arg "DEV_IMAGE=$DEV_IMAGE")
[ $no_cache = 1 ] && common+=(--no-cache)
[ -n "$network" ] && common+=(--network "$network")
for s in "${secrets[@]}"; do common+=(--secret "$s"); done

dockerfile=Dockerfile
if [ $buildkit = 0 ]; then
  # The legacy builder rejects RUN --mount: build from a copy without them.
  dockerfile=$(mktemp -t pogocache-Dockerfile.XXXXXX)
  sed -E 's/^RUN --mount=[^ ]+ \\$/RUN \\/; /^ +--mount=[^ ]+ \\$/d' Dockerfile > "$dockerfile"
  trap 'rm -f "$dockerfile"' EXIT
fi

build_one() { # stage tag
  local stage=$1 name=$2 args=("${common[@]}" -f "$dockerfile" --target "$1" -t "$2")
  if [ -n "$platform" ]; then
    if [ $has_buildx = 1 ]; then
      local out=(--load)
      [ -n "$registry" ] && out=(--push -t "$registry/$name")
      [ $push_cache = 1 ] && [ -n "$registry" ] && args+=(--cache-from "type=registry,ref=$registry/pogocache:buildcache" --cache-to "type=registry,ref=$registry/pogocache:buildcache,mode=max")
      $DOCKER buildx build --platform "$platform" "${args[@]}" "${out[@]}" .
      return
    fi
    # Without buildx: one build per platform, then a manifest list.
    local refs=()
    for p in ${platform//,/ }; do
      local arch=${p#*/}
      $DOCKER build --platform "$p" "${args[@]/#$name/$name-$arch}" -t "$name-$arch" .
      if [ -n "$registry" ]; then
        $DOCKER tag "$name-$arch" "$registry/$name-$arch"
        $DOCKER push "$registry/$name-$arch"
        refs+=("$registry/$name-$arch")
      fi
    done
    if [ -n "$registry" ]; then
      $DOCKER manifest create --insecure --amend "$registry/$name" "${refs[@]}"
      $DOCKER manifest push --insecure "$registry/$name"
    fi
    return
  fi
  if [ $push_cache = 1 ] && [ -n "$registry" ]; then
    if [ $has_buildx = 1 ]; then
      $DOCKER buildx build "${args[@]}" --load \
        --cache-from "type=registry,ref=$registry/pogocache:buildcache" \
        --cache-to "type=registry,ref=$registry/pogocache:buildcache,mode=max" .
      return
    fi
    # The engine's built-in BuildKit can export inline cache only: push the
    # image with its cache metadata and build from it next time.
    args+=(--build-arg BUILDKIT_INLINE_CACHE=1 --cache-from "$registry/$name")
  fi
  $DOCKER build "${args[@]}" .
  if [ -n "$registry" ]; then
    $DOCKER tag "$name" "$registry/$name"
    $DOCKER push "$registry/$name"
  fi
}

if [ $benchmark = 1 ]; then
  exec scripts/docker-benchmark.sh
fi

case "$target" in
  runtime) build_one runtime "${tag:-pogocache:latest}" ;;
  development) build_one development "${tag:-pogocache:dev}" ;;
  all) build_one runtime "${tag:-pogocache:latest}"; build_one development pogocache:dev ;;
esac
