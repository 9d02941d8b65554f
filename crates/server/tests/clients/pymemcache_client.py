"""pymemcache against the server with default flags: add, replace, gets and
cas must answer as they do against memcached. Prints "ok" on success.
Usage: pymemcache_client.py PORT"""
import sys

from pymemcache.client.base import Client

port = int(sys.argv[1])
c = Client(("127.0.0.1", port))
other = Client(("127.0.0.1", port))

# add: True when stored, False (NOT_STORED) when the key exists.
assert c.add("k", b"1", noreply=False) is True
assert c.add("k", b"2", noreply=False) is False
assert c.get("k") == b"1"
# replace: False (NOT_STORED) for a missing key.
assert c.replace("missing", b"x", noreply=False) is False
assert c.get("missing") is None
assert c.replace("k", b"3", noreply=False) is True

# gets + cas, with no --cas flag on the server.
value, unique = c.gets("k")
assert value == b"3" and unique is not None and int(unique) > 0, (value, unique)
assert c.cas("k", b"4", unique, noreply=False) is True
# The unique changed with that write: it cannot store twice.
assert c.cas("k", b"5", unique, noreply=False) is False
assert c.get("k") == b"4"
# A missing key: None (NOT_FOUND).
assert c.cas("missing", b"5", b"1", noreply=False) is None
# Another client writes between gets and cas: the cas fails.
value, unique = c.gets("k")
assert value == b"4"
other.set("k", b"theirs", noreply=False)
assert c.cas("k", b"mine", unique, noreply=False) is False
assert c.get("k") == b"theirs"
# A touch is a modification too.
value, unique = c.gets("k")
assert c.touch("k", 100, noreply=False) is True
assert c.cas("k", b"mine", unique, noreply=False) is False
# The usual optimistic-update loop converges.
for _ in range(5):
    value, unique = c.gets("k")
    if c.cas("k", value + b"!", unique, noreply=False):
        break
else:
    raise AssertionError("cas loop never stored")
assert c.get("k") == b"theirs!"
# gets_many returns a unique per key.
c.set("a", b"x", noreply=False)
many = c.gets_many(["a", "k", "nope"])
assert set(many) == {"a", "k"} and all(u for _, u in many.values()), many

# pymemcache's default is noreply for storage commands: replies must not
# desynchronise the connection.
c.set("q", b"v")
c.add("q", b"w")
c.replace("nokey", b"w")
assert c.get("q") == b"v"
assert c.incr("n", 1) is None
c.set("n", b"5", noreply=False)
assert c.incr("n", 3) == 8
assert c.decr("n", 10) == 0
print("ok")
