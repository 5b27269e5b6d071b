"""The other two offenses (unauthenticated MAIL bursts, connection bursts)
and the concurrency cap, which rejects without blocking."""

from guardutil import (
    GREETING_554, REPLY_421, Conn, check_status_shape, greeting_of, status,
    wait_until,
)


def test_unauthenticated_mail_burst_blocks(start_daemon):
    d = start_daemon(guard={"unauth_limit": "3", "ban_durations": "1h"})
    a = Conn(d.port)
    a.ehlo()
    for _ in range(2):
        r = a.cmd("MAIL FROM:<spammer@example.org>")
        assert r.lines == ["530 5.7.0 Authentication required"], r
    s = status(d, "127.0.0.1")
    assert s["state"] == "clear" and s["counters"]["unauth_attempts"] == 2, s
    b = Conn(d.port)
    b.ehlo()
    # the 3rd (the offense) still gets its normal 530
    r = b.cmd("MAIL FROM:<spammer@example.org>")
    assert r.lines == ["530 5.7.0 Authentication required"], r
    for c in (b, a):
        r = c.cmd("RSET")
        assert r.lines == [REPLY_421], r
        assert c.wait_closed(10)
        c.close()
    assert greeting_of(d.port) == GREETING_554
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["state"] == "blocked"
    assert s["block"]["reason"] == "unauth_attempts"
    assert s["block"]["events"] == 3


def test_connection_burst_blocks_and_nth_connection_gets_554(start_daemon):
    d = start_daemon(guard={"conn_rate_limit": "5", "conn_rate_window": "1m",
                            "ban_durations": "1h"})
    for i in range(4):
        c = Conn(d.port)
        assert c.greeting.line.startswith("220 "), (i, c.greeting)
        c.quit()
    s = status(d, "127.0.0.1")
    assert s["state"] == "clear", s
    assert s["counters"]["connections"] == 4, s
    # the 5th connection is the offense and already gets the 554
    c = Conn(d.port)
    assert c.greeting.lines == [GREETING_554], c.greeting
    r = c.cmd("EHLO client.test")
    assert r.line.startswith("503 5.5.1"), r
    assert c.cmd("QUIT").code == 221
    c.close()
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["state"] == "blocked"
    assert s["block"]["reason"] == "conn_rate"
    assert s["block"]["events"] == 5
    assert greeting_of(d.port) == GREETING_554
    # another client address is not affected
    assert greeting_of(d.port, source="127.0.0.2").startswith("220 ")


def test_concurrency_cap_rejects_extra_connection_without_block(start_daemon):
    d = start_daemon(guard={"concurrency_limit": "3", "ban_durations": "1h"})
    open_ = [Conn(d.port) for _ in range(3)]
    for c in open_:
        assert c.greeting.line.startswith("220 "), c.greeting
        c.ehlo()
    extra = Conn(d.port)
    assert extra.greeting.lines == [GREETING_554], extra.greeting
    r = extra.cmd("EHLO client.test")
    assert r.line.startswith("503 5.5.1"), r
    assert extra.cmd("QUIT").code == 221
    extra.close()
    # no block was made
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["state"] == "clear", s
    assert s["block"] is None and s["last_block"] is None, s
    assert d.ctl_json("list")["blocks"] == []
    s = wait_until(lambda: (lambda x: x if x["counters"]["concurrent"] == 3 else None)(status(d, "127.0.0.1")),
                   timeout=10, what="concurrent == 3")
    # the open sessions are unharmed
    for c in open_:
        assert c.cmd("NOOP").code == 250
    # another address is not capped by this one
    other = Conn(d.port, source="127.0.0.2")
    assert other.greeting.line.startswith("220 ")
    other.quit()
    # after one closes, a new connection is served (poll: the close is async)
    open_.pop().quit()

    def served():
        c = Conn(d.port)
        if c.greeting.line.startswith("220 "):
            return c
        c.quit()
        return None
    fresh = wait_until(served, timeout=10, interval=0.2, what="a 220 after one session closed")
    fresh.ehlo()
    open_.append(fresh)
    # full again: the next extra one is rejected, still without a block
    extra = Conn(d.port)
    assert extra.greeting.lines == [GREETING_554]
    extra.quit()
    assert status(d, "127.0.0.1")["state"] == "clear"
    for c in open_:
        c.quit()


def test_rejected_over_concurrency_connections_do_not_leak_slots(start_daemon):
    d = start_daemon(guard={"concurrency_limit": "2", "ban_durations": "1h"})
    held = [Conn(d.port) for _ in range(2)]
    for c in held:
        assert c.greeting.line.startswith("220 ")
    for _ in range(10):
        x = Conn(d.port)
        assert x.greeting.lines == [GREETING_554]
        x.close()          # some hang up at once, without QUIT
    for c in held:
        c.quit()
    # every slot comes back: two sessions at once are served again
    def two_served():
        a = Conn(d.port)
        b = Conn(d.port)
        ok = a.greeting.line.startswith("220 ") and b.greeting.line.startswith("220 ")
        a.quit()
        b.quit()
        return ok

    wait_until(two_served, timeout=10, interval=0.2,
               what="the slots released after the sessions closed")
    assert status(d, "127.0.0.1")["state"] == "clear"
