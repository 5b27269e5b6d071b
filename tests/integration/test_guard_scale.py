"""Floods from many addresses (issue 15, SPEC §4): max_tracked bounds what
the guard counts, a spray cannot push out a slow guesser's count, and an
IPv6 /48 (an IPv4 range) whose /64s (addresses) keep getting blocked is
blocked as one ("escalated"), also across the nodes of a cluster."""

import socket


from clusterutil import (  # noqa: F401  (fixtures)
    cluster, fail_auth as cluster_fail_auth, greeting as cluster_greeting, greeting_554,
    redis, wait_greeting,
)
from guardutil import (
    GREETING_554, PLAIN_AUTH_ALL, Conn, proxy_v1, proxy_v2, status, wait_until,
)

PROXY = {"proxy_protocol": "yes", "proxy_from": "127.0.0.1/32"}


def start(start_daemon, **guard):
    return start_daemon(server=dict(PROXY), tls={"plain_auth_from": PLAIN_AUTH_ALL},
                        guard=guard)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def spray_one(port, src):
    """One connection from `src` (a PROXY v2 header): greeting, QUIT, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(proxy_v2(src) + b"QUIT\r\n")
        data = b""
        while b"221" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"220 "), (src, data[:200])


def spray(port, first, n):
    for i in range(first, first + n):
        spray_one(port, f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")


def stats(d):
    return d.ctl_json("stats")


def test_spray_is_bounded_and_a_slow_guesser_still_gets_blocked(start_daemon):
    d = start(start_daemon, max_tracked="1000", auth_fail_limit="5", auth_fail_window="1h")
    guesser = "198.51.100.7"
    pid = d.proc.pid

    def guess():
        c = Conn(d.port, header=proxy_v1(guesser))
        assert c.greeting.code == 220, c.greeting
        c.ehlo()
        c.auth_fail()
        c.quit()

    # fill the table past its bound, then measure
    spray(d.port, 0, 2000)
    guess()
    base = rss_kb(pid)
    for k in range(1, 10):          # 18,000 more addresses, a guess every 2,000
        spray(d.port, k * 2000, 2000)
        if k <= 3:
            guess()
    st = stats(d)
    grown = rss_kb(pid) - base
    assert st["tracked_prefixes"] <= 1000, st
    assert st["evictions"] >= 15000, st
    assert grown < 2048, f"resident memory grew {grown} kB over 18,000 sprayed addresses"
    # the guesser's four failures survived the spray: the fifth is the limit
    assert status(d, guesser)["counters"]["auth_failures"] == 4
    c = Conn(d.port, header=proxy_v1(guesser))
    c.ehlo()
    c.auth_fail()
    c.close()
    c = Conn(d.port, header=proxy_v1(guesser))
    assert c.greeting.line == GREETING_554, c.greeting
    c.close()
    s = status(d, guesser)
    assert s["state"] == "blocked" and s["block"]["reason"] == "auth_failures", s
    assert s["block"]["events"] == 5, s
    m = d.wait_log(r"event=evict_start\b[^\n]*")
    assert "max_tracked=1000" in m.group(0), m.group(0)


def v6(net, i, host=1):
    return f"2001:db8:{net:x}:{i:x}::{host:x}"


def block_64(d, src):
    c = Conn(d.port, header=proxy_v1(src))
    assert c.greeting.code == 220, (src, c.greeting)
    c.ehlo()
    c.auth_fail()   # auth_fail_limit = 1: this is the offense
    c.close()


def greeting_via(d, src):
    c = Conn(d.port, header=proxy_v1(src))
    try:
        return c.greeting.line
    finally:
        c.close()


def test_eight_64s_escalate_to_their_48_and_lifting_it_serves_the_ninth(start_daemon):
    d = start(start_daemon, auth_fail_limit="1", ban_durations="1h",
              escalate_count="8", ipv6_escalate_prefix="48")
    for i in range(1, 8):
        block_64(d, v6(0x77, i))
    ninth = v6(0x77, 9)
    assert greeting_via(d, ninth).startswith("220 "), "seven blocks must not escalate"
    block_64(d, v6(0x77, 8))
    assert greeting_via(d, ninth) == GREETING_554
    # another /48 is not touched
    assert greeting_via(d, v6(0x78, 9)).startswith("220 ")
    s = status(d, ninth)
    assert s["state"] == "blocked", s
    assert s["block"]["reason"] == "escalated", s
    assert s["block"]["address"] == "2001:db8:77::/48", s
    assert s["block"]["events"] == 8, s
    # one of the eight shows the wide block too
    assert status(d, v6(0x77, 3))["block"]["reason"] == "escalated"
    assert d.ctl_json("history", "2001:db8:77::/48")["blocks"][0]["reason"] == "escalated"
    m = d.wait_log(r"event=block\b[^\n]*reason=escalated[^\n]*")
    assert "ip=2001:db8:77::/48" in m.group(0), m.group(0)

    assert d.ctl("unblock", "2001:db8:77::/48", "--reason", "our customer").returncode == 0
    assert greeting_via(d, ninth).startswith("220 ")
    # the narrow blocks stay
    assert greeting_via(d, v6(0x77, 2)) == GREETING_554
    assert status(d, ninth)["state"] == "clear"
    # a further narrow block brings the wide one back
    block_64(d, v6(0x77, 10))
    assert greeting_via(d, ninth) == GREETING_554
    assert status(d, ninth)["block"]["reason"] == "escalated"


def test_manual_blocks_do_not_escalate(start_daemon):
    d = start(start_daemon, escalate_count="2", ipv6_escalate_prefix="48")
    for i in range(1, 4):
        assert d.ctl("block", f"2001:db8:99:{i}::/64", "--for", "1h").returncode == 0
    assert greeting_via(d, v6(0x99, 9)).startswith("220 ")


def test_escalation_across_two_nodes(cluster, redis):
    guard = {"auth_fail_limit": "1", "ban_durations": "1h", "escalate_count": "4",
             "ipv4_escalate_prefix": "24"}
    n1, n2 = cluster(guard=guard, n=2)
    for src in ("127.0.5.11", "127.0.5.12"):
        cluster_fail_auth(n1, src, 1).close()
        wait_greeting(n2, src, greeting_554(n2.node_name), what=f"{src} on node2")
    assert cluster_greeting(n1, "127.0.5.99").startswith("220 ")
    for src in ("127.0.5.13", "127.0.5.14"):
        cluster_fail_auth(n2, src, 1).close()
        wait_greeting(n1, src, greeting_554(n1.node_name), what=f"{src} on node1")
    for d in (n1, n2):
        wait_greeting(d, "127.0.5.99", greeting_554(d.node_name), what=f"/24 on {d.node_name}")
        s = d.ctl_json("status", "127.0.5.99")
        assert s["block"]["reason"] == "escalated", (d.node_name, s)
        assert s["block"]["address"] == "127.0.5.0/24", (d.node_name, s)
    assert "127.0.5.0/24" in redis.active_prefixes()
    assert cluster_greeting(n2, "127.0.6.1").startswith("220 ")
    n1.ctl("unblock", "127.0.5.0/24", check=True)
    for d in (n1, n2):
        wait_greeting(d, "127.0.5.99", "220 ", what=f"lift on {d.node_name}")
    wait_until(lambda: "127.0.5.0/24" not in redis.active_prefixes(), what="lift in redis")
