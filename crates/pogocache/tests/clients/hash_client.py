"""Client-side consistent hashing across pogocache-rs nodes.

Usage: hash_client.py pymemcache|pylibmc <count> <port,port,...>

pymemcache: HashClient (rendezvous hashing). pylibmc: libmemcached with
ketama (the "ketama" behaviour, as twemproxy and most memcache clients
use it). Writes <count> keys (prefixed by the library's name), reads
them back one at a time and in one multi-get, checks cas and delete
routing, then prints "ok <count>".
"""

import sys

lib, count = sys.argv[1], int(sys.argv[2])
ports = [int(p) for p in sys.argv[3].split(",")]
prefix = f"{lib}:"

if lib == "pymemcache":
    from pymemcache.client.hash import HashClient

    c = HashClient([("127.0.0.1", p) for p in ports], timeout=10, connect_timeout=10)
    for i in range(count):
        assert c.set(f"{prefix}{i}", f"v{i}", noreply=False) is True, i
    for i in range(count):
        assert c.get(f"{prefix}{i}") == f"v{i}".encode(), i
    keys = [f"{prefix}{i}" for i in range(count)]
    got = c.get_many(keys)
    assert len(got) == count, len(got)
    v, cas = c.gets(f"{prefix}0")
    assert c.cas(f"{prefix}0", "new", cas, noreply=False) is True
    assert c.cas(f"{prefix}0", "newer", cas, noreply=False) is False
    c.set("tmp", "1", noreply=False)
    assert c.delete("tmp", noreply=False) is True
    assert c.get("tmp") is None
elif lib == "pylibmc":
    import pylibmc

    c = pylibmc.Client(
        [f"127.0.0.1:{p}" for p in ports],
        behaviors={"ketama": True, "tcp_nodelay": True, "cas": True},
    )
    for i in range(count):
        assert c.set(f"{prefix}{i}", f"v{i}") is True, i
    # pylibmc marks str values by flags and returns them as str.
    for i in range(count):
        assert c.get(f"{prefix}{i}") == f"v{i}", i
    keys = [f"{prefix}{i}" for i in range(count)]
    got = c.get_multi(keys)
    assert len(got) == count, len(got)
    v, cas = c.gets(f"{prefix}0")
    assert c.cas(f"{prefix}0", "new", cas) is True
    assert c.cas(f"{prefix}0", "newer", cas) is False
    c.set("tmp", "1")
    assert c.delete("tmp") is True
    assert c.get("tmp") is None
else:
    raise SystemExit(f"unknown library {lib}")

print("ok", count)
