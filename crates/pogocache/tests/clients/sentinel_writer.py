"""A writer that follows the primary through Redis Sentinel (redis-py's
Sentinel client), for tests/failover.rs.

Usage: sentinel_writer.py <sentinel ports, comma separated> <acks after recovery>

Writes w:<i> = v<i> for i = 0, 1, ... and sends WAIT 1 1000 after each
write. Prints one line per outcome, flushed at once:
  ACK <i>        the write was acknowledged by at least one replica
  UNACKED <i>    stored on the primary, no replica acknowledged it in 1 s
  ERR <name>     the write failed (primary gone, a replica answered, ...);
                 the same key is tried again
After the first ERR it stops once <acks after recovery> more writes were
acknowledged (prints DONE), or after 120 s in all.
"""
import sys
import time

from redis.exceptions import ConnectionError, ReadOnlyError, ResponseError, TimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel

ports = [int(p) for p in sys.argv[1].split(",")]
wanted = int(sys.argv[2])
sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=3)
master = sentinel.master_for(
    "mymaster", socket_timeout=3, socket_connect_timeout=1
)

i = 0
failed = False
deadline = time.time() + 120
while time.time() < deadline and wanted > 0:
    key = f"w:{i}"
    try:
        master.set(key, f"v{i}")
        n = master.execute_command("WAIT", 1, 1000)
    except (
        ConnectionError,
        TimeoutError,
        ReadOnlyError,
        ResponseError,
        MasterNotFoundError,
    ) as e:
        print(f"ERR {type(e).__name__}", flush=True)
        failed = True
        # The client's own back-off between attempts, not a test wait.
        time.sleep(0.02)
        continue
    if n >= 1:
        print(f"ACK {i}", flush=True)
        if failed:
            wanted -= 1
    else:
        print(f"UNACKED {i}", flush=True)
    i += 1
print("DONE", flush=True)
