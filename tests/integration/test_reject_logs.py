"""Honest reject logs (issue 11 items 2, 3, 5): every 554 ends up in exactly
one `event=reject ... count=` line — flushed at the minute tick, at expiry,
at unblock and at shutdown — so the logged counts add up to `stats`."""

import time

from guardutil import GREETING_554, wait_until
from smtputil import Conn


def reject_554s(d, n, **kw):
    for _ in range(n):
        c = Conn(d.port, **kw)
        assert c.greeting.lines == [GREETING_554], c.greeting
        c.close()


def logged(d, reason="blocked", ip_prefix="127."):
    return sum(int(r["count"]) for r in d.log_lines("reject")
               if r.get("reason") == reason and r.get("ip", "").startswith(ip_prefix))


def test_reject_counts_add_up_to_stats(start_daemon):
    d = start_daemon()
    # flushed at unblock
    d.ctl("block", "127.0.0.1", "--for", "1h", check=True)
    reject_554s(d, 37)
    d.ctl("unblock", "127.0.0.1", check=True)
    assert d.ctl_json("stats")["rejected_blocked"] == 37
    assert logged(d) == 37, d.log_lines("reject")
    # flushed at expiry
    d.ctl("block", "127.0.0.2", "--for", "3s", check=True)
    reject_554s(d, 23, source="127.0.0.2")
    wait_until(lambda: d.log_lines("expire"), timeout=15, what="the expiry")
    assert d.ctl_json("stats")["rejected_blocked"] == 60
    assert logged(d, ip_prefix="127.0.0.2") == 23, d.log_lines("reject")
    # flushed at shutdown
    d.ctl("block", "127.0.0.3", "--for", "1h", check=True)
    reject_554s(d, 11, source="127.0.0.3")
    total = d.ctl_json("stats")["rejected_blocked"]
    assert total == 71
    assert d.stop() == 0
    assert logged(d) == total, d.log_lines("reject")
    # and no more lines than the flushes made (a first line, then one more each)
    lines = [r for r in d.log_lines("reject") if r.get("reason") == "blocked"]
    assert len(lines) <= 6, lines


def test_reject_counts_flushed_at_the_minute_tick(start_daemon):
    """With no later 554, no expiry and no unblock, the count still comes
    out once its prefix had a quiet minute (the periodic flush)."""
    d = start_daemon()
    d.ctl("block", "127.0.0.1", "--for", "1h", check=True)
    reject_554s(d, 25)
    t0 = time.monotonic()
    wait_until(lambda: logged(d) == 25, timeout=90, interval=0.5,
               what="the pending count at the minute tick")
    assert time.monotonic() - t0 > 40, "flushed before its minute"
    assert len([r for r in d.log_lines("reject") if r.get("reason") == "blocked"]) == 2


def test_concurrency_rejects_aggregated_with_their_own_reason(start_daemon):
    """Item 3: 554s over concurrency_limit are one line per prefix per
    minute with a count (reason=concurrency), not one line each."""
    d = start_daemon(guard={"concurrency_limit": "2"})
    held = [Conn(d.port) for _ in range(2)]
    for c in held:
        assert c.greeting.code == 220
    n = 30
    reject_554s(d, n)
    assert d.ctl_json("stats")["rejected_concurrency"] == n
    for c in held:
        c.quit()
    assert d.stop() == 0
    lines = [r for r in d.log_lines("reject") if r.get("reason") == "concurrency"]
    assert 1 <= len(lines) <= 2, lines
    assert sum(int(r["count"]) for r in lines) == n, lines
    assert all(r["ip"] == "127.0.0.1/32" and "session" not in r for r in lines), lines


def test_proxy_health_checks_not_at_info(start_daemon):
    """Item 5: PROXY LOCAL health checks (HAProxy option smtpchk) are logged
    at debug, not info; real clients through the proxy still are."""
    from guardutil import proxy_v1, proxy_v2
    d = start_daemon(server={"proxy_protocol": "yes"})
    start = d.mark()
    for _ in range(10):
        with Conn(d.port, header=proxy_v2("192.0.2.1", command=0x0)) as c:
            assert c.greeting.code == 220
            c.quit()
    with Conn(d.port, header=proxy_v1("192.0.2.77")) as c:
        assert c.greeting.code == 220
        c.quit()
    wait_until(lambda: [r for r in d.log_lines("connect", start) if r.get("ip") == "192.0.2.77"],
               timeout=10, what="the real client's connect line")
    info = [r for r in d.log_lines("connect", start) if r.get("level") == "info"]
    assert [r["ip"] for r in info] == ["192.0.2.77"], info
    debug = [r for r in d.log_lines("connect", start) if r.get("level") == "debug"]
    assert len(debug) == 10 and all(r.get("proxy") == "local" for r in debug), debug
