"""The guard against the real daemon: auth-failure blocks, the exact replies
of SPEC §3, blocks lifting by themselves, and the ladder up to permanent."""

import socket
import time

import pytest

from guardutil import (
    GREETING_554, REPLY_421, T, Conn, check_status_shape, fail_auth, greeting_of,
    seconds_between, status, wait_expired, wait_greeting, wait_until,
)

GUARD_FAST = {"auth_fail_limit": "3", "ban_durations": "2s 4s", "permanent_after": "3"}


def assert_blocked_session(port, **kw):
    """A new connection while blocked: exactly the 554 greeting, 503 5.5.1 to
    every command but QUIT, 221 to QUIT, then the server closes."""
    c = Conn(port, **kw)
    try:
        assert c.greeting.lines == [GREETING_554], c.greeting
        r = c.cmd("EHLO client.test")
        assert r.lines == ["503 5.5.1 Bad sequence of commands"], r
        r = c.cmd("MAIL FROM:<someone@example.org>")
        assert r.line.startswith("503 5.5.1"), r
        r = c.cmd("RCPT TO:<rcpt@example.org>")
        assert r.line.startswith("503 5.5.1"), r
        r = c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1zZWNyZXQ=")
        assert r.line.startswith("503 5.5.1"), r
        r = c.cmd("NOOP")
        assert r.line.startswith("503 5.5.1"), r
        r = c.cmd("QUIT")
        assert r.code == 221, r
        assert c.wait_closed(10), "server did not close after 221"
    finally:
        c.close()


def block_by_auth_failures(d, n=3, **kw):
    """n failed AUTHs in one session: the last still gets its 535, the next
    command gets the 421 and the session is closed."""
    c = fail_auth(d.port, n, **kw)
    try:
        r = c.cmd("NOOP")
        assert r.lines == [REPLY_421], r
        assert c.wait_closed(10), "session not closed after the 421"
    finally:
        c.close()


def test_auth_failures_block_with_exact_replies(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    c = Conn(d.port)
    assert c.greeting.line == "220 mx.test.example ESMTP Portcullis"
    c.ehlo()
    r1 = c.auth_fail()
    r2 = c.auth_fail()
    assert r1.lines == r2.lines == ["535 5.7.8 Authentication credentials invalid"]
    # not blocked yet: the 2nd failure is below the limit
    assert greeting_of(d.port).startswith("220 ")
    # the AUTH that completes the offense still gets its 535
    r3 = c.auth_plain("bob@example.test", "nope")
    assert r3.lines == ["535 5.7.8 Authentication credentials invalid"], r3
    # ... and the session's next command gets the 421 and is closed
    r = c.cmd("MAIL FROM:<alice@example.test>")
    assert r.lines == [REPLY_421], r
    assert c.wait_closed(10), "session not closed after the 421"
    c.close()
    assert_blocked_session(d.port)
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["state"] == "blocked"
    assert s["block"]["reason"] == "auth_failures"
    assert s["block"]["events"] == 3
    assert s["block"]["address"] == "127.0.0.1/32"
    assert abs(seconds_between(s["block"]["started_at"], s["block"]["expires_at"]) - 3600) <= 2


def test_blocked_connection_closed_within_ten_seconds(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    block_by_auth_failures(d)
    c = Conn(d.port)
    try:
        assert c.greeting.lines == [GREETING_554]
        t0 = time.monotonic()
        # no command at all: the server hangs up by itself (10 s + margin)
        assert c.wait_closed(16), "blocked connection still open after 16 s"
        assert time.monotonic() - t0 < 16
    finally:
        c.close()


@pytest.mark.parametrize("after", [b"", b"NOOP\r\n", b"x" * 600],
                         ids=["quit-alone", "quit-then-noop", "quit-then-600-bytes"])
def test_blocked_client_gets_its_221_whatever_follows_the_quit(start_daemon, after):
    """The 221 to a blocked client's QUIT leaves with the FIN when the QUIT
    ends what the client sent; with bytes behind it (some still unread when
    the server has answered), a close() would reset the connection and
    destroy the 221: it must arrive, and the connection end cleanly."""
    d = start_daemon()
    d.ctl("block", "127.0.0.1", "--for", "1h", check=True)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * T)
    try:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.decode() == GREETING_554 + "\r\n"
        s.sendall(b"QUIT\r\n" + after)
        data = b""
        while True:
            chunk = s.recv(4096)          # a reset raises: the test fails
            if not chunk:
                break
            data += chunk
        assert data == b"221 2.0.0 Bye\r\n", data
    finally:
        s.close()


def test_successful_auth_is_not_counted(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    for _ in range(5):
        c = Conn(d.port)
        c.ehlo()
        r = c.auth_plain("alice@example.test", "alice-secret")
        assert r.lines == ["235 2.7.0 Authentication successful"], r
        c.quit()
    s = status(d, "127.0.0.1")
    assert s["state"] == "clear"
    assert s["counters"]["auth_failures"] == 0
    assert greeting_of(d.port).startswith("220 ")


def test_failures_across_sessions_add_up(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    a = fail_auth(d.port, 1)
    b = fail_auth(d.port, 1)
    assert status(d, "127.0.0.1")["counters"]["auth_failures"] == 2
    assert status(d, "127.0.0.1")["state"] == "clear"
    r = a.auth_plain("alice@example.test", "still-wrong")
    assert r.line.startswith("535 5.7.8"), r
    # both open sessions of the prefix end at their next command
    for c in (a, b):
        r = c.cmd("NOOP")
        assert r.lines == [REPLY_421], r
        assert c.wait_closed(10)
        c.close()
    assert greeting_of(d.port) == GREETING_554


def test_block_lifts_by_itself_and_counting_starts_afresh(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "2s"})
    block_by_auth_failures(d)
    assert greeting_of(d.port) == GREETING_554
    s = status(d, "127.0.0.1")
    assert s["state"] == "blocked"
    assert abs(seconds_between(s["block"]["started_at"], s["block"]["expires_at"]) - 2) <= 1
    # no operator: the block ends on time (2 s; poll, bounded)
    wait_greeting(d.port, "220 ", timeout=15)
    wait_expired(d, 1)
    s = wait_until(lambda: (lambda x: x if x["state"] == "clear" else None)(status(d, "127.0.0.1")),
                   timeout=10, what="status clear")
    check_status_shape(s)
    assert s["block"] is None
    assert s["last_block"] is not None
    assert s["last_block"]["state"] == "expired"
    assert s["last_block"]["reason"] == "auth_failures"
    # the block reset the counters: two new failures do not block again
    assert s["counters"]["auth_failures"] == 0
    c = fail_auth(d.port, 2)
    r = c.cmd("NOOP")
    assert r.code == 250, r
    c.quit()
    assert greeting_of(d.port).startswith("220 ")
    assert status(d, "127.0.0.1")["state"] == "clear"


def test_ladder_escalates_to_permanent(start_daemon):
    d = start_daemon(guard=GUARD_FAST)
    # 1st block: ban_durations[0] = 2s
    block_by_auth_failures(d)
    s1 = status(d, "127.0.0.1")
    assert s1["state"] == "blocked" and s1["offenses"] == 1, s1
    assert abs(seconds_between(s1["block"]["started_at"], s1["block"]["expires_at"]) - 2) <= 1
    wait_expired(d, 1)

    # 2nd block: ban_durations[1] = 4s
    block_by_auth_failures(d)
    s2 = status(d, "127.0.0.1")
    assert s2["state"] == "blocked" and s2["offenses"] == 2, s2
    assert abs(seconds_between(s2["block"]["started_at"], s2["block"]["expires_at"]) - 4) <= 1
    assert greeting_of(d.port) == GREETING_554
    wait_expired(d, 2)

    # 3rd block (permanent_after = 3): permanent
    block_by_auth_failures(d)
    s3 = status(d, "127.0.0.1")
    check_status_shape(s3)
    assert s3["state"] == "permanent", s3
    assert s3["offenses"] == 3, s3
    assert s3["block"]["state"] == "permanent"
    assert s3["block"]["expires_at"] is None
    assert s3["block"]["reason"] == "auth_failures"
    # it outlives every ban duration (longest 4 s): still 554 after 6 s
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert greeting_of(d.port) == GREETING_554
        time.sleep(0.5)
    assert status(d, "127.0.0.1")["state"] == "permanent"
    perm = d.ctl_json("list", "--permanent")["blocks"]
    assert [b["address"] for b in perm] == ["127.0.0.1/32"], perm
    # history: three blocks, newest first
    h = d.ctl_json("history", "127.0.0.1")["blocks"]
    assert [b["state"] for b in h] == ["permanent", "expired", "expired"], h
    # an operator lifts it
    cp = d.ctl("unblock", "127.0.0.1", "--reason", "customer fixed")
    assert cp.returncode == 0, cp.stderr
    assert greeting_of(d.port).startswith("220 ")


def test_last_ban_duration_repeats(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "2", "ban_durations": "2s 3s",
                            "permanent_after": "10"})
    durations = []
    for k in range(3):
        block_by_auth_failures(d, n=2)
        s = status(d, "127.0.0.1")
        assert s["state"] == "blocked", s
        durations.append(seconds_between(s["block"]["started_at"], s["block"]["expires_at"]))
        wait_expired(d, k + 1)
    assert abs(durations[0] - 2) <= 1 and abs(durations[1] - 3) <= 1 and abs(durations[2] - 3) <= 1, durations


def test_allow_list_is_never_counted_nor_blocked(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "2", "ban_durations": "1h",
                            "allow": "127.0.0.2/32"})
    c = fail_auth(d.port, 6, source="127.0.0.2")
    r = c.cmd("NOOP")
    assert r.code == 250, r
    c.quit()
    assert greeting_of(d.port, source="127.0.0.2").startswith("220 ")
    s = status(d, "127.0.0.2")
    assert s["state"] == "clear"
    assert s["counters"]["auth_failures"] == 0
    # the same failures from an address not in allow do block
    block_by_auth_failures(d, n=2)
    assert greeting_of(d.port) == GREETING_554
    assert greeting_of(d.port, source="127.0.0.2").startswith("220 ")


def test_ladder_counts_blocks_made_within_one_second(start_daemon):
    """Automatic blocks in quick succession (an operator lifts one and the
    client goes on at once) are each an offense: with permanent_after = 3
    the 3rd is permanent, and status counts 3 offenses."""
    d = start_daemon(guard={"auth_fail_limit": "2", "ban_durations": "1h 2h",
                            "permanent_after": "3"})
    # start just after a wall-clock second begins, so all blocks fall in it
    wait_until(lambda: time.time() % 1 < 0.1, timeout=3, interval=0.005,
               what="the start of a second")
    for _ in range(2):
        block_by_auth_failures(d, n=2)
        assert d.ctl("unblock", "127.0.0.1", "--reason", "customer says fixed").returncode == 0
    block_by_auth_failures(d, n=2)
    s = status(d, "127.0.0.1")
    h = d.ctl_json("history", "127.0.0.1")["blocks"]
    assert [b["reason"] for b in h] == ["auth_failures"] * 3, h
    assert s["state"] == "permanent", s
    assert s["offenses"] == 3, s


def test_failures_right_after_a_block_lifts_are_counted(start_daemon):
    """Once the client is served a 220 again, its failures count afresh:
    none is forgotten because the block's expiry is processed a moment later."""
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "2s 1h",
                            "permanent_after": "5"})
    block_by_auth_failures(d)

    def served():
        c = Conn(d.port)
        if c.greeting.line.startswith("220 "):
            return c
        c.close()
        return None
    c = wait_until(served, timeout=15, interval=0.001, what="a 220 after the block")
    c.ehlo()
    c.auth_fail()                # the 1st failure after the lift
    time.sleep(0.3)              # longer than any housekeeping tick
    c.auth_fail()
    c.auth_fail()                # the 3rd: the offense
    r = c.cmd("NOOP")
    assert r.lines == [REPLY_421], (r, status(d, "127.0.0.1"))
    c.close()
    s = status(d, "127.0.0.1")
    assert s["state"] == "blocked" and s["block"]["events"] == 3, s
