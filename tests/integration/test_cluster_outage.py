"""Cluster mode: Redis dies mid-run and comes back (issue 6).

While Redis is unreachable every node keeps serving SMTP, keeps enforcing the
blocks it knows, decides locally, logs `event=redis_down` once (not per
connection or per retry) and never crashes. When Redis returns (same port,
empty: no persistence), each node logs `event=redis_up`, writes back the
blocks Redis lost, pushes the blocks made meanwhile, loads the others', and
counting is shared again.
"""

import signal
import time

from clusterutil import (  # noqa: F401  (fixtures)
    Conn, Forwarder, T, Via, cluster, fail_auth, greeting, greeting_554, redis, start_node,
    submit, wait_connected_log, wait_greeting,
)

GUARD = {"auth_fail_limit": "6", "auth_fail_window": "10m", "ban_durations": "15m"}


def redis_events(d, start=0):
    return [f.get("event") for f in
            (d.log_lines("redis_down", start) + d.log_lines("redis_up", start))]


def test_redis_outage_and_return(cluster, redis):
    nodes = cluster(guard=GUARD)
    n1, n2, n3 = nodes
    known = "127.0.0.20"        # blocked before the outage
    during = "127.0.0.21"       # blocked by portcullisctl on node2 during it
    local = "127.0.0.22"        # blocked by node3's local counting during it
    after = "127.0.0.23"        # counted across nodes after Redis returns

    n1.ctl("block", known, "--for", "1h", check=True)
    for d in nodes:
        wait_greeting(d, known, greeting_554(d.node_name), what="block before the outage")
    marks = [d.mark() for d in nodes]

    # ---- the outage
    redis.kill9()
    for d, m in zip(nodes, marks):
        d.wait_log(r"event=redis_down\b", timeout=15, start=m)

    for d in nodes:
        r = submit(d)
        assert r.line.startswith("250 2.0.0"), \
            f"{d.node_name}: a submission during the Redis outage got {r!r}"
        g = greeting(d, known)
        assert g == greeting_554(d.node_name), \
            f"{d.node_name}: the block known before the outage is not enforced: {g!r}"
        cp = d.ctl("--json", "status", known, timeout=20)
        assert cp.returncode == 0 and '"blocked"' in cp.stdout, \
            f"{d.node_name}: portcullisctl status during the outage: rc={cp.returncode} " \
            f"{cp.stdout!r} {cp.stderr!r}"

    # a manual block during the outage holds on the node that made it
    cp = n2.ctl("block", during, "--for", "1h")
    assert cp.returncode == 0, f"block on node2 during the outage: {cp.stderr}{cp.stdout}"
    assert greeting(n2, during) == greeting_554(n2.node_name)

    # node3 decides alone meanwhile: 6 failures there block locally
    c = Conn(n3.port, source=local)
    try:
        c.ehlo()
        for _ in range(6):
            c.auth_fail()
    finally:
        c.close()
    wait_greeting(n3, local, greeting_554(n3.node_name),
                  what="local counting on node3 during the outage")

    # several reconnect attempts (backoff 100 ms doubling) pass without a log flood
    time.sleep(3.5)
    for d in nodes:
        assert d.running(), f"{d.node_name} died during the outage: {d.log()[-3000:]}"
    for d in nodes:
        submit(d)   # still serving after the retries
    for d, m in zip(nodes, marks):
        downs = d.log_lines("redis_down", m)
        assert len(downs) == 1, \
            f"{d.node_name}: {len(downs)} event=redis_down lines during one outage " \
            f"(expected exactly 1): {downs[:5]}"
        assert d.log_lines("redis_up", m) == []

    # ---- Redis returns, empty, on the same port
    redis.start()
    for d, m in zip(nodes, marks):
        d.wait_log(r"event=redis_up\b", timeout=20, start=m)
    for d, m in zip(nodes, marks):
        assert len(d.log_lines("redis_down", m)) == 1, \
            f"{d.node_name}: redis_down logged again: {redis_events(d, m)}"
        assert len(d.log_lines("redis_up", m)) == 1, \
            f"{d.node_name}: redis_up lines: {redis_events(d, m)}"

    def in_redis():
        return redis.active_prefixes() >= {f"{known}/32", f"{during}/32", f"{local}/32"}
    deadline = time.monotonic() + 5 * T
    while not in_redis():
        assert time.monotonic() < deadline, \
            f"after Redis returned, its active set lacks blocks: {redis.block_records()}"
        time.sleep(0.05)

    # every node enforces every block, including those it never saw
    for d in nodes:
        for ip in (known, during, local):
            wait_greeting(d, ip, greeting_554(d.node_name),
                          what=f"block on {ip} after resynchronisation")
        listed = {b["address"] for b in d.ctl_json("list")["blocks"]}
        assert listed == {f"{known}/32", f"{during}/32", f"{local}/32"}, \
            f"{d.node_name}: portcullisctl list after the outage: {listed}"
        r = submit(d)
        assert r.line.startswith("250 2.0.0"), (d.node_name, r)

    # counts are shared again: 2 failures on each node reach the limit of 6
    conns = []
    try:
        for d in nodes:
            c = Conn(d.port, source=after)
            assert c.greeting.line.startswith("220 "), (d.node_name, c.greeting)
            c.ehlo()
            c.auth_fail()
            c.auth_fail()
            conns.append(c)
    finally:
        for c in conns:
            c.close()
    for d in nodes:
        wait_greeting(d, after, greeting_554(d.node_name),
                      what="counts summed across nodes after Redis returned")
    for d in nodes:
        assert d.running(), f"{d.node_name} is not running"


def test_node_started_while_redis_is_down(redis, start_daemon):
    """A node that starts with Redis down serves SMTP, then joins when it
    comes back and enforces the cluster's blocks."""
    n1 = start_node(start_daemon, redis, "node1", guard=GUARD)
    src = "127.0.0.24"
    n1.ctl("block", src, "--for", "1h", check=True)
    redis.stop()
    n1.wait_log(r"event=redis_down\b", timeout=15)
    # Redis is down: the data of the first run is gone (no persistence),
    # but node1 knows its block and must write it back.
    n2 = start_node(start_daemon, redis, "node2", guard=GUARD, wait_connected=False)
    r = submit(n2)
    assert r.line.startswith("250 2.0.0"), f"node2 started without Redis: submission got {r!r}"
    m2 = n2.mark()
    redis.start()
    wait_connected_log(n2, timeout=20)
    n1.wait_log(r"event=redis_up\b", timeout=20)
    wait_greeting(n2, src, greeting_554("node2"), timeout=5,
                  what="node1's block written back and loaded by node2")
    assert n2.running(), n2.log(m2)[-3000:]


def test_unblock_during_outage_is_not_undone_when_redis_returns(redis, start_daemon):
    """An operator lifts a block on node1 while Redis is down; Redis comes
    back empty; node1 reconnects first, then node2 and node3 (they reach
    Redis through a forwarder that the test opens later). node2 and node3
    still hold the block, but it was lifted: resynchronisation must not
    bring it back."""
    fwd = Forwarder(redis.port).open()
    try:
        n1 = start_node(start_daemon, redis, "node1", guard=GUARD)
        n2 = start_node(start_daemon, Via(redis, fwd), "node2", guard=GUARD)
        n3 = start_node(start_daemon, Via(redis, fwd), "node3", guard=GUARD)
        nodes = (n1, n2, n3)
        src = "127.0.0.25"
        n1.ctl("block", src, "--for", "1h", check=True)
        for d in nodes:
            wait_greeting(d, src, greeting_554(d.node_name))
        marks = [d.mark() for d in nodes]
        redis.kill9()
        fwd.close()
        for d, m in zip(nodes, marks):
            d.wait_log(r"event=redis_down\b", timeout=15, start=m)
        n1.ctl("unblock", src, "--reason", "lifted during the outage", check=True)
        assert greeting(n1, src).startswith("220 ")
        for d in (n2, n3):      # they cannot know yet
            assert greeting(d, src) == greeting_554(d.node_name)

        redis.start()
        n1.wait_log(r"event=redis_up\b", timeout=20, start=marks[0])
        time.sleep(0.5)
        fwd.open()
        for d, m in zip((n2, n3), marks[1:]):
            d.wait_log(r"event=redis_up\b", timeout=20, start=m)
        time.sleep(1.0)
        got = {d.node_name: greeting(d, src) for d in nodes}
        assert all(g.startswith("220 ") for g in got.values()), \
            f"the block lifted on node1 during the outage is enforced again after Redis " \
            f"returned: {got}; Redis active set: {redis.block_records()}"
        h = n1.ctl_json("history", src)["blocks"]
        assert h and h[0]["state"] == "lifted", f"history after the outage: {h}"
    finally:
        fwd.close()


def test_frozen_redis_does_not_stall_smtp(cluster, redis):
    """Redis stops answering without closing its connections (SIGSTOP): the
    nodes must keep serving SMTP and enforcing known blocks."""
    nodes = cluster(guard=GUARD)
    src = "127.0.0.26"
    nodes[0].ctl("block", src, "--for", "1h", check=True)
    for d in nodes:
        wait_greeting(d, src, greeting_554(d.node_name))
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        for d in nodes:
            t0 = time.monotonic()
            r = submit(d)
            took = time.monotonic() - t0
            assert r.line.startswith("250 2.0.0"), f"{d.node_name} with Redis frozen: {r!r}"
            assert took < 10 * T, f"{d.node_name}: a submission took {took:.1f}s"
            assert greeting(d, src) == greeting_554(d.node_name)
            # failures are still answered (counting must not wait on Redis)
            c = fail_auth(d, "127.0.0.27", 1)
            c.close()
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    for d in nodes:
        assert d.running(), d.log()[-3000:]
        assert submit(d).line.startswith("250 2.0.0")
