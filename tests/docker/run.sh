#!/usr/bin/env bash
# Container tests on the real Docker engine: builds the images offline
# (--network none for the runtime image), then checks size, user, the
# healthcheck, persistence across containers, SIGTERM as PID 1, read-only
# root, dropped capabilities, any --user UID, POGOCACHE_EXTRA_FLAGS,
# POGOCACHE_AUTH_FILE, POGOCACHE_AUTH_PASSWORD, the development image's tools, the compose file
# and its cluster profile (three cluster nodes and twemproxy) and ha profile
# (a primary, two replicas and three Redis Sentinels, with a failover).
# Every container, volume and network it makes is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER DOCKER_BUILDKIT=1
run_id="pct$$"
pass=0 fail=0

cleanup() {
  $DOCKER ps -aq --filter "label=pogocache-test=$run_id" | xargs -r $DOCKER rm -fv >/dev/null 2>&1 || true
  $DOCKER volume ls -q --filter "label=pogocache-test=$run_id" | xargs -r $DOCKER volume rm >/dev/null 2>&1 || true
  [ -n "${compose_project:-}" ] && COMPOSE_PROJECT_NAME=$compose_project docker-compose --profile cluster down -v >/dev/null 2>&1 || true
  [ -n "${compose_project:-}" ] && COMPOSE_PROJECT_NAME=$compose_project docker-compose --profile ha down -v >/dev/null 2>&1 || true
  rm -rf "${tmp:-/nonexistent}"
}
trap cleanup EXIT
tmp=$(mktemp -d -t pogocache-docker.XXXXXX)

check() { # description, then a command
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok   $what"; else fail=$((fail + 1)); echo "FAIL $what"; fi
}

# RESP round trip against 127.0.0.1:port: send "$2", expect reply "$3".
resp() {
  python3 - "$1" "$2" "$3" <<'PY'
import socket, sys, time
port, req, want = int(sys.argv[1]), sys.argv[2].encode().decode('unicode_escape').encode('latin1'), sys.argv[3].encode().decode('unicode_escape').encode('latin1')
deadline = time.time() + 20
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(req)
        got = b""
        while len(got) < len(want):
            d = s.recv(65536)
            if not d:
                break
            got += d
        if got == want:
            sys.exit(0)
        print("got", got, "want", want, file=sys.stderr)
    except OSError as e:
        if time.time() > deadline:
            print(e, file=sys.stderr)
            sys.exit(1)
        time.sleep(0.2)
        continue
    sys.exit(1)
PY
}

host_port() { $DOCKER port "$1" 9401/tcp | head -1 | sed 's/.*://'; }

wait_healthy() { # container
  for _ in $(seq 150); do
    case "$($DOCKER inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" in
      healthy) return 0 ;;
      unhealthy) return 1 ;;
    esac
    sleep 0.2
  done
  return 1
}

start() { # name, extra docker args..., -- image args...
  local name=$1; shift
  $DOCKER run -d --name "$name-$run_id" --label "pogocache-test=$run_id" \
    --health-interval 1s --health-start-period 1s -p 127.0.0.1::9401 "$@" >/dev/null
  echo "$name-$run_id"
}

echo "# base images and a clean build (offline, --no-cache)"
bash tests/docker/make-images.sh
check "--help lists every option" bash -c "scripts/docker-build.sh --help | grep -q -- --parallel-jobs && scripts/docker-build.sh --help | grep -q -- --push-cache"
scripts/docker-build.sh --no-cache --network none --progress plain >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; exit 1; }

size=$($DOCKER image inspect -f '{{.Size}}' pogocache:latest)
echo "# runtime image: $size bytes"
check "runtime image under 8 MB" [ "$size" -lt 8000000 ]
check "runs as pogocache (1000:1000)" [ "$($DOCKER image inspect -f '{{.Config.User}}' pogocache:latest)" = "1000:1000" ]
check "exec-form healthcheck runs the binary's probe" \
  grep -q -- '--health' <<<"$($DOCKER image inspect -f '{{json .Config.Healthcheck.Test}}' pogocache:latest)"
check "no shell in the image" bash -c "! $DOCKER run --rm --entrypoint /bin/sh pogocache:latest -c true >/dev/null 2>&1"
check "static binary" bash -c "$DOCKER run --rm pogocache:latest --version | grep -q '^pogocache '"

c=$(start plain pogocache:latest)
check "healthy" wait_healthy "$c"
port=$(host_port "$c")
check "RESP on 0.0.0.0 inside" resp "$port" 'SET k v\r\nGET k\r\n' '+OK\r\n$1\r\nv\r\n'
t0=$(date +%s.%N); $DOCKER stop -t 10 "$c" >/dev/null; t1=$(date +%s.%N)
check "SIGTERM as PID 1 stops in under 2 s" [ "$(echo "$t1 - $t0 < 2" | bc)" = 1 ]
check "clean exit status" [ "$($DOCKER inspect -f '{{.State.ExitCode}}' "$c")" = 0 ]

echo "# hardened: read-only root, no capabilities, another UID, persistence"
$DOCKER volume create --label "pogocache-test=$run_id" "data-$run_id" >/dev/null
hard=(--read-only --cap-drop ALL --security-opt no-new-privileges:true --user 4242:4242 -v "data-$run_id:/data")
c=$(start hard "${hard[@]}" -e POGOCACHE_EXTRA_FLAGS="--persist /data/p.db --saveinterval 1" pogocache:latest)
check "healthy under --read-only --cap-drop ALL --user 4242" wait_healthy "$c"
port=$(host_port "$c")
check "write before restart" resp "$port" 'SET durable yes EX 1000\r\n' '+OK\r\n'
check "Memcache through the published port" resp "$port" 'set m 0 0 1\r\nx\r\nget m\r\n' 'STORED\r\nVALUE m 0 1\r\nx\r\nEND\r\n'
check "HTTP through the published port" resp "$port" 'GET /durable HTTP/1.0\r\n\r\n' 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: Close\r\n\r\nyes'
t0=$(date +%s.%N); $DOCKER stop -t 10 "$c" >/dev/null; t1=$(date +%s.%N)
check "SIGTERM with a final save in under 2 s" [ "$(echo "$t1 - $t0 < 2" | bc)" = 1 ]
check "the save was logged" bash -c "$DOCKER logs $c 2>&1 | grep -q 'Saving data to /data/p.db'"
check "no save failed, exit 0" bash -c "! $DOCKER logs $c 2>&1 | grep -q 'failed' && [ \$($DOCKER inspect -f '{{.State.ExitCode}}' $c) = 0 ]"
c=$(start hard2 "${hard[@]}" -e POGOCACHE_EXTRA_FLAGS="--persist /data/p.db" pogocache:latest)
check "restarted container healthy" wait_healthy "$c"
port=$(host_port "$c")
check "data survived the container" resp "$port" 'GET durable\r\n' '$3\r\nyes\r\n'
$DOCKER stop -t 10 "$c" >/dev/null

echo "# password from a secret file"
printf 's3cret\n' >"$tmp/secret"
chmod 644 "$tmp/secret"
c=$(start auth -v "$tmp/secret:/run/secrets/pogo:ro" -e POGOCACHE_AUTH_FILE=/run/secrets/pogo pogocache:latest)
check "healthy with auth (the probe authenticates)" wait_healthy "$c"
port=$(host_port "$c")
check "unauthenticated clients are refused" resp "$port" 'PING\r\n' '-NOAUTH Authentication required.\r\n'
check "the file's password works" resp "$port" 'AUTH s3cret\r\nPING\r\n' '+OK\r\n+PONG\r\n'
$DOCKER stop -t 10 "$c" >/dev/null

echo "# password from POGOCACHE_AUTH_PASSWORD (the upstream operator's contract)"
c=$(start envpw -e POGOCACHE_AUTH_PASSWORD=env-s3cret pogocache:latest)
check "healthy with POGOCACHE_AUTH_PASSWORD (the probe authenticates)" wait_healthy "$c"
port=$(host_port "$c")
check "no password: refused" resp "$port" 'PING\r\n' '-NOAUTH Authentication required.\r\n'
check "POGOCACHE_AUTH_PASSWORD works" resp "$port" 'AUTH env-s3cret\r\nPING\r\n' '+OK\r\n+PONG\r\n'
check "the password is never logged" bash -c "! $DOCKER logs $c 2>&1 | grep -q env-s3cret"
$DOCKER stop -t 10 "$c" >/dev/null
both=$($DOCKER run -d --label "pogocache-test=$run_id" -v "$tmp/secret:/run/secrets/pogo:ro" \
  -e POGOCACHE_AUTH_PASSWORD=env-s3cret -e POGOCACHE_AUTH_FILE=/run/secrets/pogo pogocache:latest)
check "password and password file together: refused" bash -c \
  "[ \$($DOCKER wait $both) = 1 ] && $DOCKER logs $both 2>&1 | grep -q 'POGOCACHE_AUTH_PASSWORD and POGOCACHE_AUTH_FILE are both set'"

echo "# docker-compose"
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
compose_project="pogocachetest$$"
check "compose file is valid" docker-compose config -q
if COMPOSE_PROJECT_NAME=$compose_project POGOCACHE_PORT=$free_port docker-compose up -d pogocache >"$tmp/compose.log" 2>&1; then
  cid=$(COMPOSE_PROJECT_NAME=$compose_project docker-compose ps -q pogocache)
  check "compose service serves" resp "$free_port" 'PING\r\n' '+PONG\r\n'
  check "compose service read-only, no capabilities" \
    [ "$($DOCKER inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}' "$cid")" = "true [ALL]" ]
else
  cat "$tmp/compose.log"
  fail=$((fail + 1))
  echo "FAIL compose up"
fi

echo "# compose cluster profile: three cluster-mode nodes and twemproxy"
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cp1=$(free); cp2=$(free); cp3=$(free); tport=$(free)
mkdir -p "$tmp/cluster"
printf 'node-1 127.0.0.1:%s 0-5460\nnode-2 127.0.0.1:%s 5461-10922\nnode-3 127.0.0.1:%s 10923-16383\n' \
  "$cp1" "$cp2" "$cp3" >"$tmp/cluster/nodes.conf"
chmod -R a+rX "$tmp/cluster"
cluster_env=(env COMPOSE_PROJECT_NAME=$compose_project POGOCACHE_CLUSTER_DIR="$tmp/cluster"
  POGOCACHE_CLUSTER_PORT_1=$cp1 POGOCACHE_CLUSTER_PORT_2=$cp2 POGOCACHE_CLUSTER_PORT_3=$cp3
  POGOCACHE_TWEMPROXY_PORT=$tport)
check "compose cluster profile is valid" "${cluster_env[@]}" docker-compose --profile cluster config -q
# twemproxy's image: Debian's nutcracker on the local debian base (apt
# over the host network; the classic builder, as compose v1 uses).
if DOCKER_BUILDKIT=0 timeout 600 $DOCKER build --network host -t pogocache-twemproxy:latest \
    -f deploy/compose/twemproxy.Dockerfile deploy/compose >"$tmp/twemproxy-build.log" 2>&1 \
  && "${cluster_env[@]}" timeout 300 docker-compose --profile cluster up -d --no-build \
    pogocache-node-1 pogocache-node-2 pogocache-node-3 twemproxy >"$tmp/cluster.log" 2>&1; then
  for p in $cp1 $cp2 $cp3; do check "cluster node on $p answers" resp "$p" 'PING\r\n' '+PONG\r\n'; done
  check "redis-py RedisCluster: 3000 keys over the three containers" \
    timeout 120 python3 crates/pogocache/tests/clients/redis_cluster.py "$cp1" 3000
  share_ok=1
  for p in $cp1 $cp2 $cp3; do
    n=$(timeout 20 redis-cli -p "$p" DBSIZE)
    echo "  node on $p holds $n keys"
    [ "$n" -gt 500 ] || share_ok=0
  done
  check "every node holds a share" [ "$share_ok" = 1 ]
  check "redis-cli -c follows MOVED between containers" bash -c \
    "[ \"\$(timeout 20 redis-cli -c -p $cp1 SET foo bar)\" = OK ] && [ \"\$(timeout 20 redis-cli -c -p $cp2 GET foo)\" = bar ]"
  check "MOVED names the host port" resp "$cp1" 'GET foo\r\n' "-MOVED 12182 127.0.0.1:$cp3\\r\\n"
  check "memcache through twemproxy" resp "$tport" 'set mk 0 0 2\r\nhi\r\nget mk\r\n' 'STORED\r\nVALUE mk 0 2\r\nhi\r\nEND\r\n'
  check "twemproxy spreads memcache keys over the nodes" python3 - "$tport" "$cp1" "$cp2" "$cp3" <<'PY'
import socket, sys
tp, nodes = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
s = socket.create_connection(("127.0.0.1", tp), timeout=20)
s.sendall(b"".join(b"set tw:%d 0 0 1\r\nv\r\n" % i for i in range(1500)))
got = b""
while got.count(b"STORED\r\n") < 1500:
    got += s.recv(65536)
def dbsize(p):
    c = socket.create_connection(("127.0.0.1", p), timeout=20)
    c.sendall(b"DBSIZE\r\n")
    return int(c.recv(100)[1:-2])
sizes = [dbsize(p) for p in nodes]
print("  memcache keys per node, with the RESP ones:", sizes)
sys.exit(0 if all(n > 300 for n in sizes) else 1)
PY
  # A reload moves node-3's slots to node-1 (SIGHUP through compose).
  printf 'node-1 127.0.0.1:%s 0-5460 10923-16383\nnode-2 127.0.0.1:%s 5461-10922\nnode-3 127.0.0.1:%s\n' \
    "$cp1" "$cp2" "$cp3" >"$tmp/cluster/nodes.conf"
  "${cluster_env[@]}" docker-compose --profile cluster kill -s HUP pogocache-node-1 pogocache-node-2 pogocache-node-3 >/dev/null 2>&1
  check "after SIGHUP, node-3's slots answer MOVED to node-1" bash -c \
    "for i in \$(seq 100); do [ \"\$(timeout 5 redis-cli -p $cp3 GET foo)\" = 'MOVED 12182 127.0.0.1:$cp1' ] && exit 0; sleep 0.1; done; exit 1"
  "${cluster_env[@]}" timeout 60 docker-compose --profile cluster stop -t 5 pogocache-node-2 >/dev/null 2>&1
  check "twemproxy ejects a stopped node: misses, not errors" python3 - "$tport" <<'PY'
import socket, sys, time
# After the node stops, requests for its keys fail until twemproxy ejects
# it (server_failure_limit 2); from then on every get is answered.
deadline = time.time() + 30
req = b"".join(b"get tw:%d\r\n" % i for i in range(200))
while time.time() < deadline:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(req)
    got = b""
    while got.count(b"END\r\n") + got.count(b"SERVER_ERROR") < 200:
        d = s.recv(65536)
        if not d:
            break
        got += d
    if got.count(b"END\r\n") == 200:
        print("  after ejection:", got.count(b"VALUE "), "hits of 200")
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
PY
else
  tail -30 "$tmp/twemproxy-build.log" "$tmp/cluster.log" 2>/dev/null
  fail=$((fail + 1)); echo "FAIL compose cluster profile up"
fi
"${cluster_env[@]}" timeout 120 docker-compose --profile cluster down -v >/dev/null 2>&1 || true

echo "# compose ha profile: a primary, two replicas, three Sentinels, a failover"
hp1=$(free); hp2=$(free); hp3=$(free); sp1=$(free); sp2=$(free); sp3=$(free)
ha_env=(env COMPOSE_PROJECT_NAME=$compose_project POGOCACHE_HA_PORT_1=$hp1 POGOCACHE_HA_PORT_2=$hp2
  POGOCACHE_HA_PORT_3=$hp3 POGOCACHE_SENTINEL_PORT_1=$sp1 POGOCACHE_SENTINEL_PORT_2=$sp2
  POGOCACHE_SENTINEL_PORT_3=$sp3 POGOCACHE_SENTINEL_DOWN_AFTER_MS=2000)
check "compose ha profile is valid" "${ha_env[@]}" docker-compose --profile ha config -q
# Sentinel's image: Debian's redis-sentinel on the local debian base (apt
# over the host network, as for twemproxy).
if DOCKER_BUILDKIT=0 timeout 600 $DOCKER build --network host -t pogocache-sentinel:latest \
    -f deploy/compose/sentinel.Dockerfile deploy/compose >"$tmp/sentinel-build.log" 2>&1 \
  && "${ha_env[@]}" timeout 300 docker-compose --profile ha up -d --no-build \
    pogocache-primary pogocache-replica-1 pogocache-replica-2 sentinel-1 sentinel-2 sentinel-3 >"$tmp/ha.log" 2>&1; then
  # Polls (Sentinel's own timers decide when things happen) with a
  # deadline; prints what it saw on failure.
  ha() {
    python3 - "$@" <<'PY'
import socket, sys, time

def call(port, *args, timeout=5):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
    req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args))
    s.sendall(req)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
        if got.startswith((b"+", b"-", b":")) and got.endswith(b"\r\n"):
            break
        if got.startswith(b"$"):
            n = int(got[1:got.index(b"\r\n")])
            if n < 0 or len(got) >= got.index(b"\r\n") + 2 + n + 2:
                break
    return got.decode("latin1")

def info(port):
    t = call(port, "INFO", "replication")
    return dict(l.split(":", 1) for l in t.split("\r\n") if ":" in l and not l.startswith("$"))

def until(secs, f):
    deadline, last = time.time() + secs, None
    while time.time() < deadline:
        try:
            last = f()
            if last is True:
                return
        except OSError as e:
            last = e
        time.sleep(0.2)
    print("  last seen:", last, file=sys.stderr)
    sys.exit(1)

what, ports = sys.argv[1], sys.argv[2:]
if what == "replicas-up":
    until(60, lambda: all(info(p).get("master_link_status") == "up" for p in ports[1:]) or [info(p) for p in ports[1:]])
elif what == "write":
    for i in range(1000):
        assert call(ports[0], "SET", "ha:%d" % i, "v%d" % i) == "+OK\r\n"
    got = call(ports[0], "WAIT", "2", "5000")
    assert got == ":2\r\n", got
    for p in ports[1:]:
        assert call(p, "GET", "ha:999") == "$4\r\nv999\r\n"
        assert call(p, "SET", "x", "y").startswith("-READONLY")
elif what == "promoted":
    # One replica became the primary with every key; the other follows it.
    def done():
        roles = {p: info(p).get("role") for p in ports}
        prim = [p for p, r in roles.items() if r == "master"]
        if len(prim) != 1:
            return roles
        other = [p for p in ports if p != prim[0]][0]
        i = info(other)
        if i.get("master_link_status") != "up":
            return i
        for k in (0, 500, 999):
            if call(prim[0], "GET", "ha:%d" % k) != "$%d\r\nv%d\r\n" % (len("v%d" % k), k):
                return "ha:%d missing" % k
        print("  promoted: the replica on host port", prim[0])
        return True
    until(90, done)
elif what == "rejoined":
    until(90, lambda: (info(ports[0]).get("role") == "slave" and info(ports[0]).get("master_link_status") == "up"
                       and call(ports[0], "GET", "ha:999") == "$4\r\nv999\r\n") or info(ports[0]))
PY
  }
  check "ha: both replicas linked to the primary" ha replicas-up "$hp1" "$hp2" "$hp3"
  check "ha: 1000 writes acknowledged by WAIT 2, readable and read-only on replicas" ha write "$hp1" "$hp2" "$hp3"
  sentinels_see() { # host ports of the Sentinels
    local p out
    for p in "$@"; do
      for _ in $(seq 150); do
        out=$(redis-cli -p "$p" SENTINEL master mymaster 2>/dev/null | tr '\n' ' ')
        if echo "$out" | grep -q 'num-slaves 2 .*num-other-sentinels 2'; then continue 2; fi
        sleep 0.2
      done
      echo "  sentinel on $p: $out"
      return 1
    done
  }
  check "ha: Sentinels see two replicas and each other" sentinels_see "$sp1" "$sp2" "$sp3"
  "${ha_env[@]}" docker-compose kill pogocache-primary >/dev/null 2>&1
  check "ha: kill the primary: a replica is promoted with every key, the other follows it" ha promoted "$hp2" "$hp3"
  "${ha_env[@]}" docker-compose start pogocache-primary >/dev/null 2>&1
  check "ha: the old primary comes back as a replica of the new one" ha rejoined "$hp1"
else
  tail -30 "$tmp/sentinel-build.log" "$tmp/ha.log" 2>/dev/null
  fail=$((fail + 1)); echo "FAIL compose ha profile up"
fi
"${ha_env[@]}" timeout 120 docker-compose --profile ha down -v >/dev/null 2>&1 || true

echo "# --registry / --push-cache against a local registry (Debian's docker-registry)"
if ! command -v docker-registry >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null 2>&1 || true
fi
if command -v docker-registry >/dev/null 2>&1; then
  reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: 127.0.0.1:%s\n' "$tmp" "$reg_port" >"$tmp/registry.yml"
  docker-registry serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
  reg_pid=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$reg_port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  if scripts/docker-build.sh --registry "127.0.0.1:$reg_port" --push-cache --network none >"$tmp/push.log" 2>&1; then
    check "image pushed to the registry" bash -c "curl -fs http://127.0.0.1:$reg_port/v2/pogocache/tags/list | grep -q latest"
  else
    tail -20 "$tmp/push.log"
    fail=$((fail + 1))
    echo "FAIL registry push"
  fi
  kill "$reg_pid" 2>/dev/null || true
  $DOCKER rmi "127.0.0.1:$reg_port/pogocache:latest" >/dev/null 2>&1 || true
else
  echo "docker-registry not installable: registry check skipped"
fi

if [ "${SKIP_DEV_IMAGE:-0}" != 1 ]; then
  echo "# development image (apt over --network host)"
  if scripts/docker-build.sh --target development --network host --progress plain >"$tmp/dev.log" 2>&1; then
    check "development image has gdb, strace, redis-cli, curl, psql" \
      $DOCKER run --rm --entrypoint sh pogocache:dev -c 'command -v gdb strace redis-cli curl psql >/dev/null'
  else
    tail -20 "$tmp/dev.log"
    fail=$((fail + 1))
    echo "FAIL development image build"
  fi
fi

echo "# a source-only change rebuilds no dependency"
edit=$tmp/edit
mkdir -p "$edit"
git ls-files -z | xargs -0 -I{} cp --parents {} "$edit"/
# A unique edit, so no earlier run's layers can satisfy the build.
echo "// rebuild check $run_id $(date +%s%N)" >>"$edit/crates/server/src/lib.rs"
if (cd "$edit" && $DOCKER build --network none --progress plain -t "pogocache:edit-$run_id" . >"$tmp/edit.log" 2>&1); then
  deps=$({ grep -oE 'Compiling [a-z0-9_-]+' "$tmp/edit.log" || true; } | awk '{print $2}' | { grep -v '^pogocache' || true; } | sort -u | tr '\n' ' ')
  check "only the workspace's crates recompiled (others: ${deps:-none})" [ -z "$deps" ]
  check "our crates did recompile" grep -q 'Compiling pogocache-server' "$tmp/edit.log"
else
  tail -20 "$tmp/edit.log"; fail=$((fail + 1)); echo "FAIL source-only rebuild"
fi
$DOCKER rmi "pogocache:edit-$run_id" >/dev/null 2>&1 || true

echo "# more docker-build.sh options"
printf 'token\n' >"$tmp/build-secret"
check "--target all --tag --parallel-jobs --secret --platform --progress" \
  scripts/docker-build.sh --target all --tag "pogocache:opts-$run_id" --parallel-jobs 2 \
    --secret "id=token,src=$tmp/build-secret" --platform linux/amd64 --progress plain --network host
$DOCKER rmi "pogocache:opts-$run_id" "pogocache:opts-$run_id-amd64" "pogocache:dev-amd64" >/dev/null 2>&1 || true
check "--no-buildkit (legacy builder, no cache mounts)" \
  scripts/docker-build.sh --no-buildkit --tag "pogocache:legacy-$run_id" --network none
check "legacy image is the same static scratch image" \
  bash -c "[ \$($DOCKER image inspect -f '{{.Size}}' pogocache:legacy-$run_id) -lt 8000000 ]"
$DOCKER rmi "pogocache:legacy-$run_id" >/dev/null 2>&1 || true

if [ "${SKIP_COMPOSE_TESTS:-0}" != 1 ]; then
  echo "# compose test profile (the workspace test suite in a container)"
  if COMPOSE_PROJECT_NAME=$compose_project docker-compose --profile test up --exit-code-from pogocache-test pogocache-test >"$tmp/compose-test.log" 2>&1; then
    pass=$((pass + 1)); echo "ok   compose test profile: the suite passed in a container"
  else
    tail -30 "$tmp/compose-test.log"; fail=$((fail + 1)); echo "FAIL compose test profile"
  fi
fi

if [ "${SKIP_DOCKER_BENCHMARK:-0}" != 1 ]; then
  echo "# --benchmark (prunes the build cache; last)"
  if BENCH_NETWORK=none scripts/docker-build.sh --benchmark >"$tmp/bench.out" 2>"$tmp/bench.err"; then
    cat "$tmp/bench.out"
    check "benchmark tables printed" grep -q '| Code change only |' "$tmp/bench.out"
  else
    tail -20 "$tmp/bench.err"; fail=$((fail + 1)); echo "FAIL benchmark"
  fi
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
