"""redis-py against pogocache-rs with the client's default settings, in
RESP2 and RESP3 (protocol=3), optionally with a password. Run by
crates/server/tests/clients.rs: python3 redis_py.py PORT [PASSWORD].
Prints "ok" and exits 0 when every check holds."""

import sys

import redis

port = int(sys.argv[1])
password = sys.argv[2] if len(sys.argv) > 2 else None

for protocol in (2, 3):
    r = redis.Redis(host="127.0.0.1", port=port, password=password, protocol=protocol)
    p = f"py{protocol}:"
    assert r.ping() is True
    assert r.set(p + "a", "1") is True
    assert r.get(p + "a") == b"1"
    assert r.get(p + "missing") is None
    assert r.mget([p + "a", p + "missing"]) == [b"1", None]
    assert r.incr(p + "n") == 1
    assert r.incrby(p + "n", 41) == 42
    assert r.set(p + "t", "x", ex=100) is True
    assert 0 < r.ttl(p + "t") <= 100
    assert r.exists(p + "a", p + "t", p + "missing") == 2
    assert r.delete(p + "t") == 1
    assert r.append(p + "a", "23") == 3
    assert sorted(r.keys(p + "*")) == [(p + "a").encode(), (p + "n").encode()]
    assert sorted(r.scan_iter(match=p + "*")) == [(p + "a").encode(), (p + "n").encode()]
    assert r.echo("hi") == b"hi"
    # Handshake and introspection.
    assert r.client_setname(p + "client") is True
    assert r.client_getname() in (p + "client", (p + "client").encode())
    me = r.client_id()
    assert isinstance(me, int) and me > 0
    mine = [c for c in r.client_list() if int(c["id"]) == me]
    assert mine and mine[0]["name"] == p + "client", mine
    assert mine[0]["resp"] == str(protocol)
    assert mine[0]["lib-name"] == "redis-py", mine
    info = r.info()
    assert info["redis_version"] and info["connected_clients"] >= 1, info
    assert "used_memory" in r.info("memory")
    keyspace = r.info("keyspace")
    assert keyspace["db0"]["keys"] >= 2, keyspace
    cfg = r.config_get("maxmemory*")
    assert set(cfg) == {"maxmemory", "maxmemory-policy"}, cfg
    assert r.config_get("databases") == {"databases": "1"}
    with r.pipeline(transaction=False) as pipe:
        for i in range(100):
            pipe.set(f"{p}k{i}", i)
        pipe.get(f"{p}k99")
        assert pipe.execute()[-1] == b"99"
    assert r.dbsize() >= 102
    r.close()
print("ok")
