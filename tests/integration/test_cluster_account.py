"""Cluster mode: account locks are the cluster's (issue 14, SPEC §4). A
spray spread over three nodes and six addresses is summed into one lock,
which every node enforces against unfamiliar addresses; a login on one node
makes its address familiar on all; an unlock on one node lifts it on all;
a repeat sent to another node is still a repeat (the hash key is shared)."""

from clusterutil import (  # noqa: F401  (fixtures)
    ALICE, PROPAGATION_LIMIT, Conn, cluster, redis,
)
from smtputil import wait_until

ACCOUNT = {"account_fail_limit": "6", "account_fail_window": "10m", "account_lock": "1h",
           "auth_fail_limit": "3"}
OWNER = "127.0.0.2"
STRANGER = "127.0.0.20"


def auth(d, source, user, password):
    c = Conn(d.port, source=source)
    try:
        assert c.greeting.code == 220, (d.node_name, c.greeting)
        c.ehlo()
        return c.auth_plain(user, password)
    finally:
        c.quit()


def state(d, name=ALICE[0]):
    return d.ctl_json("account", name)["state"]


def test_three_nodes_see_one_lock(cluster, redis):
    nodes = cluster(guard=ACCOUNT)
    # the owner logs in through node1 only
    assert auth(nodes[0], OWNER, *ALICE).code == 235
    # six bots, two per node, one try each
    for i in range(6):
        d = nodes[i % 3]
        r = auth(d, f"127.0.0.{10 + i}", ALICE[0], f"spray-{i}")
        assert r.line.startswith("535 5.7.8"), (d.node_name, r)
    for d in nodes:
        wait_until(lambda: state(d) == "locked", timeout=PROPAGATION_LIMIT, interval=0.02,
                   what=f"alice locked on {d.node_name}")
    locks = [d.ctl_json("account", ALICE[0])["lock"] for d in nodes]
    assert locks[0]["events"] == 6, locks
    assert all(lk["started_at"] == locks[0]["started_at"] for lk in locks), locks
    assert sum(1 for d in nodes for _ in d.log_lines("account_lock")) == 1, \
        "one node made the lock"
    for d in nodes:
        r = auth(d, STRANGER, *ALICE)
        assert r.line.startswith("535 5.7.8"), (d.node_name, r)
        # familiar through node1's login, on every node
        assert auth(d, OWNER, *ALICE).code == 235, d.node_name

    assert nodes[1].ctl("unlock", ALICE[0], "--reason", "cleared").returncode == 0
    for d in nodes:
        wait_until(lambda: state(d) == "clear", timeout=PROPAGATION_LIMIT, interval=0.02,
                   what=f"alice unlocked on {d.node_name}")
        assert auth(d, STRANGER, *ALICE).code == 235, d.node_name


def test_a_repeat_on_another_node_is_still_a_repeat(cluster):
    nodes = cluster(guard=ACCOUNT)
    src = "127.0.0.40"
    for i in range(9):
        r = auth(nodes[i % 3], src, ALICE[0], "stale")
        assert r.line.startswith("535 5.7.8"), r
    for d in nodes:
        assert d.ctl_json("status", src)["state"] == "clear", d.node_name
    assert nodes[0].ctl_json("account", ALICE[0])["failures"] <= 3
