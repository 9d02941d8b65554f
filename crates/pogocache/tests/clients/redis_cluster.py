"""redis-py's RedisCluster against pogocache-rs cluster nodes.

Usage: redis_cluster.py <port of any node> <count>

Discovers the topology from one node (CLUSTER SLOTS), writes <count> keys
through the cluster client (each goes to its slot's owner), reads every
one back, checks a hash-tagged multi-key MGET and that a key sent to the
wrong node is redirected, then prints "ok <count>".
"""

import sys

from redis.cluster import RedisCluster

port, count = int(sys.argv[1]), int(sys.argv[2])
rc = RedisCluster(host="127.0.0.1", port=port, socket_timeout=10)
nodes = rc.get_primaries()
assert len(nodes) == 3, nodes

for i in range(count):
    assert rc.set(f"key:{i}", f"value:{i}") is True
for i in range(count):
    got = rc.get(f"key:{i}")
    assert got == f"value:{i}".encode(), (i, got)

# Keys sharing a hash tag live together: one MGET serves them.
rc.set("{user1}:a", "1")
rc.set("{user1}:b", "2")
assert rc.mget(["{user1}:a", "{user1}:b"]) == [b"1", b"2"]
# Multi-slot reads split by slot on the client.
assert rc.mget_nonatomic(["key:1", "key:2", "key:3"]) == [b"value:1", b"value:2", b"value:3"]
assert rc.delete("{user1}:a", "{user1}:b") == 2

# Each primary answers for its own keys only.
owner = rc.get_node_from_key("key:1")
assert owner.port in {n.port for n in nodes}
assert rc.keyslot("key:1") == rc.cluster_keyslot("key:1")
rc.close()
print("ok", count)
