"""IPv6 clients are counted and blocked per ipv6_prefix (/64): failures from
[::1] block ::/64, while IPv4 loopback goes on."""

import pytest

from guardutil import (
    GREETING_554, REPLY_421, Conn, check_status_shape, fail_auth, free_port,
    greeting_of, have_ipv6_loopback, status,
)

pytestmark = pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")


def start_dual(start_daemon, **guard):
    p4, p6 = free_port("127.0.0.1"), free_port("::1")
    d = start_daemon(server={"listen": f"127.0.0.1:{p4}/starttls [::1]:{p6}/starttls"},
                     guard=guard)
    return d, p4, p6


def test_ipv6_loopback_blocked_per_64(start_daemon):
    d, p4, p6 = start_dual(start_daemon, auth_fail_limit="3", ban_durations="1h")
    assert greeting_of(p6, host="::1").startswith("220 ")
    c = fail_auth(p6, 3, host="::1")
    r = c.cmd("NOOP")
    assert r.lines == [REPLY_421], r
    assert c.wait_closed(10)
    c.close()
    assert greeting_of(p6, host="::1") == GREETING_554
    # IPv4 loopback is another prefix
    assert greeting_of(p4).startswith("220 ")

    s = status(d, "::1")
    check_status_shape(s)
    assert s["address"] == "::1"
    assert s["prefix"] == "::/64"
    assert s["state"] == "blocked"
    assert s["block"]["address"] == "::/64"
    assert s["block"]["reason"] == "auth_failures"
    assert s["block"]["events"] == 3
    # another address of the same /64 is blocked by it; the next /64 is not
    assert status(d, "::2")["state"] == "blocked"
    assert status(d, "::abcd:0:0:1")["state"] == "blocked"
    assert status(d, "0:0:0:1::1")["state"] == "clear"
    assert status(d, "127.0.0.1")["state"] == "clear"
    assert [b["address"] for b in d.ctl_json("list")["blocks"]] == ["::/64"]
    m = d.wait_log(r"event=block\b[^\n]*")
    assert "ip=::/64" in m.group(0), m.group(0)

    assert d.ctl("unblock", "::1", "--reason", "v6 test").returncode == 0
    assert greeting_of(p6, host="::1").startswith("220 ")
    assert status(d, "::/64")["last_block"]["lift_reason"] == "v6 test"


def test_ipv6_counters_are_per_prefix_not_per_family(start_daemon):
    d, p4, p6 = start_dual(start_daemon, auth_fail_limit="3", ban_durations="1h")
    a = fail_auth(p4, 2)
    b = fail_auth(p6, 2, host="::1")
    assert status(d, "::1")["counters"]["auth_failures"] == 2
    assert status(d, "127.0.0.1")["counters"]["auth_failures"] == 2
    for c in (a, b):
        assert c.cmd("NOOP").code == 250
        c.quit()
    assert greeting_of(p6, host="::1").startswith("220 ")
    assert greeting_of(p4).startswith("220 ")


def test_manual_block_of_ipv6_prefix_ends_open_sessions(start_daemon):
    d, p4, p6 = start_dual(start_daemon)
    c6 = Conn(p6, host="::1")
    c6.ehlo()
    c4 = Conn(p4)
    c4.ehlo()
    assert d.ctl("block", "::/64", "--for", "1h").returncode == 0
    r = c6.cmd("NOOP")
    assert r.lines == [REPLY_421], r
    c6.close()
    assert c4.cmd("NOOP").code == 250
    c4.quit()
    assert greeting_of(p6, host="::1") == GREETING_554
