"""Cluster mode: failures spread over three nodes are counted as one (issue 6).

An attacker who spreads password guesses over the nodes behind a balancer
must meet one limit: with auth_fail_limit = 6, two failures on each of three
nodes block the address on all three.
"""

from clusterutil import (  # noqa: F401  (fixtures)
    Closed, Conn, cluster, greeting, greeting_554, redis, reply_421, wait_greeting,
)

SPREAD = {"auth_fail_limit": "6", "auth_fail_window": "10m", "ban_durations": "15m"}


def test_failures_spread_over_three_nodes_block_on_all(cluster, redis):
    nodes = cluster(guard=SPREAD)
    src = "127.0.0.2"
    sessions = []
    try:
        # 2 failures on node1, 2 on node2, 1 on node3: 5 in all, below the limit
        for d, k in zip(nodes, (2, 2, 1)):
            c = Conn(d.port, source=src)
            assert c.greeting.startswith("220 "), (d.node_name, c.greeting)
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
            assert r == reply_421(d.node_name), \
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
