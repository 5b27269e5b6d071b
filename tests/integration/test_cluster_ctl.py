"""Cluster mode: portcullisctl gives the same answers, in the same JSON, on
any node (issue 6 item 5; SPEC §5 shapes)."""

import json
import time

from clusterutil import (  # noqa: F401  (fixtures)
    wait_until,
    BLOCK_KEYS, COUNTER_KEYS, STATUS_KEYS, Conn, T, cluster, ctl_request, greeting,
    greeting_554, redis, wait_greeting,
)

GUARD = {"auth_fail_limit": "2", "ban_durations": "15m 1h"}


def check_block_shape(b):
    assert set(b) >= BLOCK_KEYS, f"BLOCK lacks {BLOCK_KEYS - set(b)}: {b}"
    assert b["state"] in ("blocked", "permanent", "lifted", "expired"), b
    assert b["reason"] in ("auth_failures", "unauth_attempts", "conn_rate", "manual"), b


def check_status_shape(st):
    assert set(st) >= STATUS_KEYS, f"status lacks {STATUS_KEYS - set(st)}: {st}"
    assert set(st["counters"]) >= COUNTER_KEYS, st["counters"]
    for k in ("block", "last_block"):
        if st[k] is not None:
            check_block_shape(st[k])


def canon(doc):
    return json.dumps(doc, sort_keys=True, indent=1)


def test_status_history_list_identical_on_every_node(cluster):
    nodes = cluster(guard=GUARD)
    n1, n2, n3 = nodes
    guard_ip, lifted, perm, clear = "127.0.0.40", "127.0.0.41", "127.0.0.42", "127.0.0.43"

    # a guard block from failures spread over node1 and node2
    for d in (n1, n2):
        c = Conn(d.port, source=guard_ip)
        try:
            c.ehlo()
            c.auth_fail()
        finally:
            c.close()
    for d in nodes:
        wait_greeting(d, guard_ip, greeting_554(d.node_name))
    # a manual block made on node2 and lifted on node3
    n2.ctl("block", lifted, "--for", "1h", "--reason", "ticket 42", check=True)
    wait_greeting(n3, lifted, greeting_554("node3"))
    n3.ctl("unblock", lifted, "--reason", "customer verified", check=True)
    for d in nodes:
        wait_greeting(d, lifted, "220 ")
    # a permanent one made on node3
    n3.ctl("block", perm, "--permanent", check=True)
    for d in nodes:
        wait_greeting(d, perm, greeting_554(d.node_name))
    time.sleep(0.3)

    def docs(*args):
        return [d.ctl_json(*args) for d in nodes]

    for ip in (guard_ip, lifted, perm, clear):
        sts = docs("status", ip)
        for d, st in zip(nodes, sts):
            check_status_shape(st)
        # counters are compared in the test below; here everything else
        no_counters = [{k: v for k, v in st.items() if k != "counters"} for st in sts]
        assert no_counters[0] == no_counters[1] == no_counters[2], \
            f"status {ip} differs between nodes:\n" + \
            "\n".join(f"--- {d.node_name}\n{canon(s)}" for d, s in zip(nodes, no_counters))
        hs = docs("history", ip)
        for h in hs:
            assert set(h) == {"prefix", "blocks"}, h
            for b in h["blocks"]:
                check_block_shape(b)
        assert hs[0] == hs[1] == hs[2], f"history {ip} differs between nodes:\n" + \
            "\n".join(f"--- {d.node_name}\n{canon(h)}" for d, h in zip(nodes, hs))

    st = n1.ctl_json("status", guard_ip)
    assert st["state"] == "blocked" and st["block"]["reason"] == "auth_failures", st
    assert st["block"]["events"] == 2, st
    st = n2.ctl_json("status", lifted)
    assert st["state"] == "clear" and st["block"] is None, st
    lb = st["last_block"]
    assert lb["state"] == "lifted" and lb["lift_reason"] == "customer verified", lb
    assert lb["node"] == "node2" and lb["lifted_at"] is not None, lb
    st = n1.ctl_json("status", perm)
    assert st["state"] == "permanent" and st["block"]["expires_at"] is None, st
    st = n1.ctl_json("status", clear)
    assert st["state"] == "clear" and st["block"] is None and st["last_block"] is None, st

    lists = docs("list")
    for doc in lists:
        assert set(doc) == {"blocks"}, doc
        for b in doc["blocks"]:
            check_block_shape(b)
    sorted_lists = [sorted(doc["blocks"], key=lambda b: b["address"]) for doc in lists]
    assert sorted_lists[0] == sorted_lists[1] == sorted_lists[2], \
        "list differs between nodes:\n" + \
        "\n".join(f"--- {d.node_name}\n{canon(s)}" for d, s in zip(nodes, sorted_lists))
    assert {b["address"] for b in sorted_lists[0]} == {f"{guard_ip}/32", f"{perm}/32"}

    # the control socket (what portcullisctl speaks) agrees too
    raw = [ctl_request(d, {"cmd": "status", "ip": perm}) for d in nodes]
    assert all(r["ok"] for r in raw), raw
    assert raw[0]["result"]["block"] == raw[1]["result"]["block"] == raw[2]["result"]["block"]


def test_status_counters_are_the_cluster_sums_on_every_node(cluster):
    """Counts are summed across nodes (issue 6 item 2), and status shows the
    same answer on any node (item 5): one failed AUTH and one
    unauthenticated MAIL on each of three nodes are 3 and 3 everywhere."""
    nodes = cluster(guard={"auth_fail_limit": "100", "unauth_limit": "100"})
    src = "127.0.0.44"
    for d in nodes:
        c = Conn(d.port, source=src)
        try:
            c.ehlo()
            c.auth_fail()
            r = c.cmd("MAIL FROM:<x@example.org>")
            assert r.line.startswith("530 "), (d.node_name, r)
            c.cmd("QUIT")
        finally:
            c.close()
    def counters():
        return {d.node_name: d.ctl_json("status", src)["counters"] for d in nodes}

    def all_three():
        return all((c["auth_failures"], c["unauth_attempts"], c["connections"]) == (3, 3, 3)
                   for c in counters().values())

    # every count reaches Redis; each node then reads the cluster's sums
    wait_until(all_three, timeout=5,
               what=f"status counters of {src} after 1 failure + 1 unauthenticated MAIL + 1 "
                    f"connection on each of 3 nodes: 3/3/3 on every node")
    for name, c in counters().items():
        assert (c["auth_failures"], c["unauth_attempts"], c["connections"]) == (3, 3, 3), \
            (name, c)


def test_stats_json_on_every_node(cluster):
    nodes = cluster(guard=GUARD)
    nodes[0].ctl("block", "127.0.0.45", "--for", "1h", check=True)
    for d in nodes:
        wait_greeting(d, "127.0.0.45", greeting_554(d.node_name))
    for d in nodes:
        s = d.ctl_json("stats")
        assert isinstance(s, dict) and s, (d.node_name, s)
        if "active_blocks" in s:
            assert s["active_blocks"] == 1, (d.node_name, s)
