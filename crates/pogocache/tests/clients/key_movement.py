"""Key movement when a fourth node joins three, with client-side hashing.

Usage: key_movement.py pymemcache|pylibmc <count> <p1,p2,p3,p4>

Writes <count> keys through a client that knows the first three nodes,
then reads them through a client that knows all four: a key that moved
to another node is a miss. Prints "moved <fraction>". The servers are
real, so this measures what users see, not a model of the hash.
"""

import sys

lib, count = sys.argv[1], int(sys.argv[2])
ports = [int(p) for p in sys.argv[3].split(",")]
assert len(ports) == 4
keys = [f"user:{i}" for i in range(count)]


def client(ps):
    if lib == "pymemcache":
        from pymemcache.client.hash import HashClient

        return HashClient([("127.0.0.1", p) for p in ps], timeout=10, connect_timeout=10)
    import pylibmc

    return pylibmc.Client([f"127.0.0.1:{p}" for p in ps], behaviors={"ketama": True})


three = client(ports[:3])
for i in range(0, count, 500):
    batch = {k: "v" for k in keys[i : i + 500]}
    failed = three.set_many(batch) if lib == "pymemcache" else three.set_multi(batch)
    assert not failed, failed

four = client(ports)
hits = 0
for i in range(0, count, 500):
    batch = keys[i : i + 500]
    got = four.get_many(batch) if lib == "pymemcache" else four.get_multi(batch)
    hits += len(got)
print("moved", (count - hits) / count)
