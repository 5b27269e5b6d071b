"""SPEC §6 for the guard: block / unblock / expire lines with the client
prefix and reason, auth results without the password, and rejected
connections aggregated per prefix (a flood is not a log flood)."""

import base64
import time

from guardutil import (
    GREETING_554, REPLY_421, WRONG_PASSWORD, Conn, fail_auth, greeting_of,
    wait_expired, wait_until,
)


def block_by_auth_failures(d, n=3):
    c = fail_auth(d.port, n)
    r = c.cmd("NOOP")
    assert r.lines == [REPLY_421], r
    c.close()


def test_block_expire_unblock_and_auth_lines(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "2s 1h"})
    block_by_auth_failures(d)
    m = d.wait_log(r"^.*\bevent=block\b.*$")
    line = m.group(0)
    blocks = d.log_lines("block")
    assert len(blocks) == 1, blocks
    b = blocks[0]
    assert b.get("ip") == "127.0.0.1/32", line
    assert b.get("reason") == "auth_failures", line
    assert b.get("events") == "3", line
    assert b.get("ts", "").endswith("Z"), line
    assert b.get("level") in ("info", "warn", "notice", "warning"), line

    # every AUTH failure is logged with the user and the client, never the password
    fails = [f for f in d.log_lines("auth") if f.get("result") == "fail"]
    assert len(fails) == 3, fails
    for f in fails:
        assert f.get("user") == "alice@example.test", f
        assert f.get("ip", "").startswith("127.0.0.1"), f
        assert f.get("session"), f
    log = d.log()
    assert WRONG_PASSWORD not in log
    assert base64.b64encode(f"\0alice@example.test\0{WRONG_PASSWORD}".encode()).decode() not in log
    conns = d.log_lines("connect")
    assert conns and all(c.get("ip") and c.get("session") for c in conns), conns

    # the 2 s block expires by itself and says so
    wait_expired(d, 1)
    d.wait_log(r"\bevent=expire\b[^\n]*ip=127\.0\.0\.1/32")

    # an operator's block and unblock
    assert d.ctl("block", "127.0.0.1", "--for", "1h", "--reason", "manual test").returncode == 0
    m = d.wait_log(r"\bevent=block\b[^\n]*reason=manual[^\n]*")
    assert "ip=127.0.0.1/32" in m.group(0)
    assert d.ctl("unblock", "127.0.0.1", "--reason", "customer fixed").returncode == 0
    m = d.wait_log(r"^.*\bevent=unblock\b.*$")
    assert "ip=127.0.0.1/32" in m.group(0), m.group(0)


def test_unauth_and_conn_rate_blocks_are_logged_with_reason(start_daemon):
    d = start_daemon(guard={"unauth_limit": "2", "conn_rate_limit": "4",
                            "conn_rate_window": "1m", "ban_durations": "1h"})
    c = Conn(d.port, source="127.0.0.3")
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").code == 530
    assert c.cmd("MAIL FROM:<a@example.org>").code == 530
    c.close()
    for _ in range(4):
        greeting_of(d.port, source="127.0.0.4")
    wait_until(lambda: len(d.log_lines("block")) >= 2, timeout=10, what="two block lines")
    got = {(b.get("ip"), b.get("reason"), b.get("events")) for b in d.log_lines("block")}
    assert ("127.0.0.3/32", "unauth_attempts", "2") in got, got
    assert ("127.0.0.4/32", "conn_rate", "4") in got, got


def test_rejected_connections_are_aggregated_per_prefix(start_daemon):
    d = start_daemon()
    assert d.ctl("block", "127.0.0.1", "--for", "1h").returncode == 0
    n = 60
    for _ in range(n):
        c = Conn(d.port)
        assert c.greeting.lines == [GREETING_554]
        c.close()

    def mine():
        return [r for r in d.log_lines("reject") if r.get("ip", "").startswith("127.0.0.1")]

    # at least one reject line for the prefix within a minute and a bit
    first = wait_until(mine, timeout=75, interval=0.5, what="an event=reject line")
    assert len(first) <= 5, f"{len(first)} reject lines for {n} connections: not aggregated"
    for r in first:
        assert int(r["count"]) >= 1, r
    # over a minute later (one more rejection nudges a lazy flush) the counts
    # add up to the rejections
    t0 = time.monotonic()
    wait_until(lambda: time.monotonic() - t0 > 61 or sum(int(r["count"]) for r in mine()) >= n,
               timeout=65, interval=0.5, what="a minute")
    extra = Conn(d.port)
    assert extra.greeting.lines == [GREETING_554]
    extra.close()
    total = wait_until(lambda: (lambda s: s if s >= n else None)(sum(int(r["count"]) for r in mine())),
                       timeout=75, interval=0.5, what=f"reject counts to reach {n}")
    assert total <= n + 1, total
    lines = mine()
    assert len(lines) <= 6, f"{len(lines)} reject lines for {n + 1} connections"
    assert any(int(r["count"]) > 1 for r in lines), lines
