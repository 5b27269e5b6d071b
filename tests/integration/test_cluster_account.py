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


def test_redis_outage_known_locks_hold_and_come_back(cluster, redis):
    """Same outage rules as blocks: known locks stay enforced, failures are
    counted locally (and lock locally), and after Redis returns (empty: it
    lost everything) the locks the nodes know are written back to it."""
    nodes = cluster(guard=ACCOUNT, n=2)
    n1, n2 = nodes
    assert auth(n1, OWNER, *ALICE).code == 235
    for i in range(6):
        assert auth(nodes[i % 2], f"127.0.0.{10 + i}", ALICE[0], f"spray-{i}").code == 535
    # both nodes have met the lock (a stranger tried each) and the owner
    for d in nodes:
        assert auth(d, STRANGER, *ALICE).code == 535
        assert auth(d, OWNER, *ALICE).code == 235

    redis.kill9()
    for d in nodes:
        assert auth(d, STRANGER, *ALICE).code == 535, f"{d.node_name} forgot the lock"
        assert auth(d, OWNER, *ALICE).code == 235, f"{d.node_name} forgot the owner"
    # counted locally meanwhile: six failures for bob on node2 lock him there
    for i in range(6):
        assert auth(n2, f"127.0.0.{30 + i}", "bob@example.test", f"guess-{i}").code == 535
    assert auth(n2, STRANGER, "bob@example.test", "bob-secret").code == 535
    n2.wait_log(r"event=account_lock\b.*account=bob@example\.test")

    redis.start()
    # the next call that reaches Redis writes back what each node knows
    wait_until(lambda: auth(n2, "127.0.0.40", "carol@example.test", "x").code == 535
               and redis.cli("exists", "portcullis:alocked:bob@example.test") == "1",
               timeout=20, what="node2 writing its locks back")
    for who in ("alice@example.test", "bob@example.test"):
        wait_until(lambda: n1.ctl_json("account", who)["state"] == "locked",
                   timeout=20, what=f"{who} locked as node1 reads Redis")
