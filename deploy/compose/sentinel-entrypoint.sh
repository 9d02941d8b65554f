#!/bin/sh
# Writes Sentinel's configuration from the environment into a writable
# directory (Sentinel rewrites its file as it learns the topology), then
# runs it. SENTINEL_AUTH_PASS is the primary's --auth password, if any.
set -eu
dir=${SENTINEL_DIR:-/run/sentinel}
conf=$dir/sentinel.conf
name=${SENTINEL_MASTER_NAME:-mymaster}
{
  echo "port 26379"
  echo "dir $dir"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel monitor $name ${SENTINEL_PRIMARY_HOST:-pogocache-primary} ${SENTINEL_PRIMARY_PORT:-9401} ${SENTINEL_QUORUM:-2}"
  echo "sentinel down-after-milliseconds $name ${SENTINEL_DOWN_AFTER_MS:-5000}"
  echo "sentinel failover-timeout $name ${SENTINEL_FAILOVER_TIMEOUT_MS:-30000}"
  echo "sentinel parallel-syncs $name 1"
  if [ -n "${SENTINEL_AUTH_PASS:-}" ]; then
    echo "sentinel auth-pass $name $SENTINEL_AUTH_PASS"
  fi
} >"$conf"
exec redis-sentinel "$conf"
