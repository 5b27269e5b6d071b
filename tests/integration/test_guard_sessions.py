"""When a prefix becomes blocked, each of its open sessions (on any worker)
gets 421 4.7.0 at its next command and is closed; other prefixes go on."""

from guardutil import GREETING_554, REPLY_421, Conn, fail_auth, greeting_of, status


def test_manual_block_ends_open_sessions_of_the_prefix(start_daemon):
    d = start_daemon()
    # several sessions, so that with workers = 2 both workers hold some
    mine = [Conn(d.port) for _ in range(6)]
    for c in mine:
        assert c.greeting.line.startswith("220 ")
        c.ehlo()
    authed = mine[0]
    assert authed.auth_plain("alice@example.test", "alice-secret").code == 235
    in_mail = mine[1]
    assert in_mail.auth_plain("bob@example.test", "bob-secret").code == 235
    assert in_mail.cmd("MAIL FROM:<bob@example.test>").code == 250
    other = Conn(d.port, source="127.0.0.2")
    other.ehlo()

    cp = d.ctl("block", "127.0.0.1", "--for", "1h", "--reason", "abuse report 42")
    assert cp.returncode == 0, cp.stderr

    cmds = ["NOOP", "MAIL FROM:<alice@example.test>", "RCPT TO:<x@example.org>",
            "EHLO again.test", "RSET", "VRFY alice"]
    for c, cmd in zip(mine, cmds):
        r = c.cmd(cmd)
        assert r.lines == [REPLY_421], (cmd, r)
        assert c.wait_closed(10), f"session not closed after 421 to {cmd}"
        c.close()
    # the session of another address goes on
    assert other.cmd("NOOP").code == 250
    assert other.auth_plain("alice@example.test", "alice-secret").code == 235
    other.quit()
    assert greeting_of(d.port) == GREETING_554
    assert greeting_of(d.port, source="127.0.0.2").startswith("220 ")
    s = status(d, "127.0.0.1")
    assert s["state"] == "blocked"
    assert s["block"]["reason"] == "manual"


def test_automatic_block_ends_the_prefix_other_sessions(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    idle = [Conn(d.port) for _ in range(4)]
    for c in idle:
        c.ehlo()
    assert idle[0].auth_plain("alice@example.test", "alice-secret").code == 235
    other = Conn(d.port, source="127.0.0.2")
    other.ehlo()
    attacker = fail_auth(d.port, 3)
    for c in idle + [attacker]:
        r = c.cmd("NOOP")
        assert r.lines == [REPLY_421], r
        assert c.wait_closed(10)
        c.close()
    assert other.cmd("NOOP").code == 250
    other.quit()
    assert greeting_of(d.port) == GREETING_554


def test_block_of_covering_prefix_ends_sessions_and_rejects(start_daemon):
    d = start_daemon()
    a = Conn(d.port, source="127.0.0.5")
    a.ehlo()
    b = Conn(d.port, source="127.0.0.1")
    b.ehlo()
    cp = d.ctl("block", "127.0.0.0/29", "--permanent")
    assert cp.returncode == 0, cp.stderr
    for c in (a, b):
        r = c.cmd("NOOP")
        assert r.lines == [REPLY_421], r
        c.close()
    assert greeting_of(d.port, source="127.0.0.6") == GREETING_554
    # 127.0.0.9 is outside 127.0.0.0/29
    assert greeting_of(d.port, source="127.0.0.9").startswith("220 ")
    s = status(d, "127.0.0.6")
    assert s["state"] == "permanent", s
    assert s["block"]["address"] == "127.0.0.0/29"
