"""Cluster mode configuration (issue 6 item 6): `redis_prefix` lets two
deployments share one Redis without seeing each other's blocks or counts;
`redis = unix:/path`, `redis_password` and `redis_db` work."""

from clusterutil import (  # noqa: F401  (fixtures)
    Conn, greeting, greeting_554, redis, redis_factory, start_node, submit, wait_greeting,
)

GUARD = {"auth_fail_limit": "2", "ban_durations": "15m"}


def test_redis_prefix_separates_two_deployments(redis, start_daemon):
    a1 = start_node(start_daemon, redis, "a-node1", guard=GUARD, store={"redis_prefix": "depa:"})
    a2 = start_node(start_daemon, redis, "a-node2", guard=GUARD, store={"redis_prefix": "depa:"})
    b1 = start_node(start_daemon, redis, "b-node1", guard=GUARD, store={"redis_prefix": "depb:"})

    # a block in deployment A reaches A's other node, never B
    src = "127.0.0.50"
    a1.ctl("block", src, "--for", "1h", check=True)
    wait_greeting(a2, src, greeting_554("a-node2"), what="block on a-node1 -> a-node2")
    g = greeting(b1, src)
    assert g.startswith("220 "), f"deployment B enforces deployment A's block: {g!r}"
    assert b1.ctl_json("list")["blocks"] == [], b1.ctl_json("list")
    assert b1.ctl_json("history", src)["blocks"] == [], "B sees A's history"
    assert redis.active_prefixes("depa:") == {f"{src}/32"}
    assert redis.smembers("depb:active") == set()
    assert redis.smembers("portcullis:active") == set(), "the default prefix was used"
    keys = redis.cli("keys", "*").split("\n")
    strays = [k for k in keys if k and not k.startswith(("depa:", "depb:"))]
    assert strays == [], f"keys outside both prefixes: {strays}"

    # counts are not summed across deployments: 1 failure in A + 1 in B
    # stays below the limit of 2 in each; a 2nd one in A blocks in A only
    cnt = "127.0.0.51"
    for d in (a1, b1):
        c = Conn(d.port, source=cnt)
        try:
            c.ehlo()
            c.auth_fail()
        finally:
            c.close()
    for d in (a1, a2, b1):
        g = greeting(d, cnt)
        assert g.startswith("220 "), \
            f"{d.node_name}: failures of two deployments were summed: {g!r}"
    c = Conn(a2.port, source=cnt)
    try:
        c.ehlo()
        c.auth_fail()
    finally:
        c.close()
    wait_greeting(a1, cnt, greeting_554("a-node1"), what="A's own sum reaches the limit")
    g = greeting(b1, cnt)
    assert g.startswith("220 "), f"deployment B blocks after A's offense: {g!r}"

    # and a block in B stays in B
    other = "127.0.0.52"
    b1.ctl("block", other, "--for", "1h", check=True)
    assert greeting(b1, other) == greeting_554("b-node1")
    for d in (a1, a2):
        assert greeting(d, other).startswith("220 "), d.node_name


def test_unix_socket_password_and_db(redis_factory, start_daemon):
    r = redis_factory("redis-auth", password="s3cret-redis-pw", unix=True)
    store = {"redis_db": "3"}
    n1 = start_node(start_daemon, r, "node1", guard=GUARD, store=store)
    n2 = start_node(start_daemon, r, "node2", guard=GUARD, store=store)
    assert n1.sections["store"]["redis"].startswith("unix:")
    src = "127.0.0.53"
    n1.ctl("block", src, "--for", "1h", check=True)
    wait_greeting(n2, src, greeting_554("node2"), what="propagation over a unix socket")
    assert r.active_prefixes(db=3) == {f"{src}/32"}, r.block_records(db=3)
    assert r.smembers("portcullis:active", db=0) == set(), "written to db 0, not 3"
    for d in (n1, n2):
        assert "s3cret-redis-pw" not in d.log(), f"{d.node_name} logs the Redis password"
    # counts are summed through this connection too
    cnt = "127.0.0.54"
    for d in (n1, n2):
        c = Conn(d.port, source=cnt)
        try:
            c.ehlo()
            c.auth_fail()
        finally:
            c.close()
    for d in (n1, n2):
        wait_greeting(d, cnt, greeting_554(d.node_name))


def test_wrong_redis_password_is_not_silent(redis_factory, start_daemon):
    """A node given a wrong password cannot use Redis: it must say so in its
    log (not claim to be connected) and still serve SMTP, deciding locally."""
    r = redis_factory("redis-auth2", password="right-pw")
    r.password = "wrong-pw"          # what the node is told; redis wants right-pw
    d = start_node(start_daemon, r, "node1", guard=GUARD, wait_connected=False)
    d.wait_log(r"level=(error|warn)\b.*(redis|store)", timeout=10)
    assert d.log_lines("redis_connected") == [] and d.log_lines("redis_up") == [], \
        f"the node claims a connection with a wrong password: {d.log()[-2000:]}"
    assert "wrong-pw" not in d.log(), "the Redis password is in the log"
    assert submit(d).line.startswith("250 2.0.0")
    # local decisions meanwhile: 2 failures block on this node
    src = "127.0.0.55"
    c = Conn(d.port, source=src)
    try:
        c.ehlo()
        c.auth_fail()
        c.auth_fail()
    finally:
        c.close()
    wait_greeting(d, src, greeting_554("node1"), what="local block with Redis unusable")
    r.password = "right-pw"          # so the fixture can stop it
