"""Cluster mode: a node restarted while the others keep running comes back
with every block in force, including those made and lifted while it was
away (issue 6)."""

from clusterutil import (  # noqa: F401  (fixtures)
    Conn, cluster, greeting, greeting_554, redis, wait_connected_log, wait_greeting,
)

GUARD = {"auth_fail_limit": "2", "ban_durations": "15m"}


def test_restarted_node_comes_back_with_every_block(cluster, redis):
    n1, n2, n3 = cluster(guard=GUARD)
    manual = "127.0.0.30"       # node1, 1h
    perm = "127.0.0.31"         # node3, permanent
    guard_ip = "127.0.0.32"     # guard block imposed via node2's failures
    lifted = "127.0.0.33"       # node1, lifted while node2 is down
    while_down = "127.0.0.34"   # node1, made while node2 is down
    n1.ctl("block", manual, "--for", "1h", check=True)
    n3.ctl("block", perm, "--permanent", check=True)
    n1.ctl("block", lifted, "--for", "1h", check=True)
    c = Conn(n2.port, source=guard_ip)
    try:
        c.ehlo()
        c.auth_fail()
        c.auth_fail()
    finally:
        c.close()
    for ip in (manual, perm, guard_ip, lifted):
        wait_greeting(n2, ip, greeting_554("node2"))

    rc = n2.stop()
    assert rc == 0, f"node2 exited {rc} on SIGTERM"
    n1.ctl("unblock", lifted, check=True)
    n3.ctl("block", while_down, "--for", "2h", check=True)

    m = n2.mark()
    n2.start()
    wait_connected_log(n2, start=m)
    expected = {f"{ip}/32" for ip in (manual, perm, guard_ip, while_down)}

    listed = n2.ctl_json("list")["blocks"]
    got = {b["address"] for b in listed}
    assert got == expected, \
        f"node2 after its restart lists {sorted(got)}, expected {sorted(expected)}"
    by_addr = {b["address"]: b for b in listed}
    assert by_addr[f"{perm}/32"]["state"] == "permanent", by_addr[f"{perm}/32"]
    assert by_addr[f"{perm}/32"]["expires_at"] is None, by_addr[f"{perm}/32"]
    assert by_addr[f"{guard_ip}/32"]["reason"] == "auth_failures", by_addr[f"{guard_ip}/32"]
    assert by_addr[f"{while_down}/32"]["node"] == "node3", by_addr[f"{while_down}/32"]
    perm_list = {b["address"] for b in n2.ctl_json("list", "--permanent")["blocks"]}
    assert perm_list == {f"{perm}/32"}, perm_list

    for ip in (manual, perm, guard_ip, while_down):
        g = greeting(n2, ip)
        assert g == greeting_554("node2"), f"restarted node2 does not enforce {ip}: {g!r}"
    g = greeting(n2, lifted)
    assert g.startswith("220 "), f"restarted node2 still enforces the lifted block: {g!r}"

    # the others kept running and agree
    for d in (n1, n3):
        assert {b["address"] for b in d.ctl_json("list")["blocks"]} == expected, d.node_name


def test_restarted_node_keeps_receiving_propagation(cluster):
    n1, n2, n3 = cluster(guard=GUARD)
    n3.stop()
    m = n3.mark()
    n3.start()
    wait_connected_log(n3, start=m)
    src = "127.0.0.35"
    n1.ctl("block", src, "--for", "1h", check=True)
    wait_greeting(n3, src, greeting_554("node3"), what="block on node1 -> restarted node3")
    n2.ctl("unblock", src, check=True)
    wait_greeting(n3, src, "220 ", what="unblock on node2 -> restarted node3")
