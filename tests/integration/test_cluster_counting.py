"""Cluster mode: failures spread over three nodes are counted as one (issue 6).

An attacker who spreads password guesses over the nodes behind a balancer
must meet one limit: with auth_fail_limit = 6, two failures on each of three
nodes block the address on all three.
"""

import datetime
import time

import pytest

from clusterutil import (  # noqa: F401  (fixtures)
    Closed, Conn, cluster, fail_auth, greeting, greeting_554, redis, reply_421, wait_greeting,
)


def rfc3339(s):
    """Seconds since the epoch of an RFC 3339 UTC time."""
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

SPREAD = {"auth_fail_limit": "6", "auth_fail_window": "10m", "ban_durations": "15m"}


def test_failures_spread_over_three_nodes_block_on_all(cluster, redis):
    nodes = cluster(guard=SPREAD)
    src = "127.0.0.2"
    sessions = []
    try:
        # 2 failures on node1, 2 on node2, 1 on node3: 5 in all, below the limit
        for d, k in zip(nodes, (2, 2, 1)):
            c = Conn(d.port, source=src)
            assert c.greeting.line.startswith("220 "), (d.node_name, c.greeting)
            c.ehlo()
            for _ in range(k):
                c.auth_fail()
            sessions.append(c)
        for d in nodes:
            g = greeting(d, src)
            assert g.startswith("220 "), \
                f"{d.node_name} blocked {src} after 5 failures in all (limit 6): {g!r}"
        assert redis.smembers("portcullis:active") == set()

        # the 6th failure, on node3, reaches the cluster-wide limit
        sessions[2].auth_fail()
        for d in nodes:
            wait_greeting(d, src, greeting_554(d.node_name),
                          what=f"6th failure (sum over 3 nodes) blocks on {d.node_name}")

        # exactly one block, made by one node, for the whole prefix
        recs = redis.block_records()
        assert len(recs) == 1, f"expected one block record in Redis, got {recs}"
        rec = next(iter(recs.values()))
        assert rec["prefix"] == f"{src}/32" and rec["reason"] == "auth_failures", rec
        assert int(rec["events"]) == 6, f"the block should count 6 events: {rec}"
        for d in nodes:
            st = d.ctl_json("status", src)
            assert st["state"] == "blocked", (d.node_name, st)
            assert st["block"]["reason"] == "auth_failures", (d.node_name, st)
            assert st["block"]["events"] == 6, (d.node_name, st)
            h = d.ctl_json("history", src)
            assert len(h["blocks"]) == 1, f"{d.node_name}: one block expected: {h}"

        # every node's open session of that address is ended at its next command
        for d, c in zip(nodes, sessions):
            r = c.cmd("NOOP")
            assert r.line == reply_421(d.node_name), \
                f"{d.node_name}: open session of a blocked address got {r!r} to NOOP"
            assert c.wait_closed(), f"{d.node_name}: session not closed after its 421"
    finally:
        for c in sessions:
            c.close()


def test_other_addresses_unaffected_by_cluster_block(cluster):
    nodes = cluster(guard=SPREAD)
    bad, good = "127.0.0.3", "127.0.0.4"
    conns = [Conn(d.port, source=bad) for d in nodes]
    try:
        for c in conns:
            c.ehlo()
            c.auth_fail()
            c.auth_fail()
        for d in nodes:
            wait_greeting(d, bad, greeting_554(d.node_name))
            g = greeting(d, good)
            assert g.startswith("220 "), f"{d.node_name}: an innocent address got {g!r}"
    finally:
        for c in conns:
            c.close()


def test_unauth_attempts_summed_across_nodes(cluster, redis):
    nodes = cluster(guard={"unauth_limit": "3", "ban_durations": "15m"})
    src = "127.0.0.13"
    for i, d in enumerate(nodes):
        for other in nodes:
            g = greeting(other, src)
            assert g.startswith("220 "), \
                f"{other.node_name} blocked {src} after {i} unauthenticated MAILs (limit 3): {g!r}"
        with Conn(d.port, source=src) as c:
            c.ehlo()
            r = c.cmd("MAIL FROM:<x@example.org>")
            assert r.line.startswith("530 5.7.0"), (d.node_name, r)
    for d in nodes:
        wait_greeting(d, src, greeting_554(d.node_name),
                      what="3 unauthenticated MAILs over 3 nodes (limit 3)")
    recs = list(redis.block_records().values())
    assert [r["reason"] for r in recs] == ["unauth_attempts"], recs


def test_connections_summed_across_nodes(cluster, redis):
    """conn_rate_limit = 6: two connections on each of three nodes reach it;
    from then on every node refuses the address."""
    nodes = cluster(guard={"conn_rate_limit": "6", "conn_rate_window": "10m",
                           "ban_durations": "15m"})
    src = "127.0.0.14"
    for i in range(5):
        d = nodes[i % 3]
        g = greeting(d, src)
        assert g.startswith("220 "), \
            f"{d.node_name}: connection {i + 1} of 6 (limit 6, summed) got {g!r}"
        time.sleep(0.1)   # let the count reach Redis before the next one
    greeting(nodes[2], src)      # the 6th: the offense (its own reply may be either)
    for d in nodes:
        wait_greeting(d, src, greeting_554(d.node_name),
                      what="6 connections over 3 nodes (limit 6)")
    recs = list(redis.block_records().values())
    assert [r["reason"] for r in recs] == ["conn_rate"], recs


def test_ladder_counts_offenses_made_on_other_nodes(cluster):
    """The 2nd block of an address gets ban_durations[1] even when its 1st
    was imposed by another node: the cluster has one ladder."""
    nodes = cluster(guard={"auth_fail_limit": "2", "ban_durations": "2s 1h"})
    n1, n2, n3 = nodes
    src = "127.0.0.15"
    c = fail_auth(n1, src, 2)
    c.close()
    wait_greeting(n2, src, greeting_554("node2"))
    st = n2.ctl_json("status", src)
    first = st["block"]
    assert rfc3339(first["expires_at"]) - rfc3339(first["started_at"]) == pytest.approx(2, abs=0.5), first
    for d in nodes:
        wait_greeting(d, src, "220 ", timeout=5, what=f"the 2s ban expires on {d.node_name}")
    time.sleep(1.5)   # let every node record the expiry
    c = fail_auth(n2, src, 2)
    c.close()
    wait_greeting(n3, src, greeting_554("node3"))
    second = n3.ctl_json("status", src)["block"]
    dur = rfc3339(second["expires_at"]) - rfc3339(second["started_at"])
    assert dur == pytest.approx(3600, abs=5), \
        f"2nd offense of {src} (1st on node1, 2nd on node2) got a {dur:.0f}s ban, " \
        f"expected ban_durations[1] = 1h: {second}"
    for d in nodes:
        assert d.ctl_json("status", src)["offenses"] == 2, (d.node_name, d.ctl_json("status", src))
