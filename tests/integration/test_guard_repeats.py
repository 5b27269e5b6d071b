"""Repeats count once (issue 14, SPEC §4): a mail program or contact form
retrying one stale password is not a guesser. The same wrong password
repeated from one address gets its 535 every time but counts once (never a
block), and `status` says how many failures were repeats; a guesser, who
must vary the password, is blocked as before; with repeat_counts_once = no
the repeats count again."""

from guardutil import (
    ALICE, GREETING_554, REPLY_421, Conn, greeting_of, status, wait_until,
)

LIMIT3 = {"auth_fail_limit": "3", "auth_fail_window": "10m", "ban_durations": "1h"}


def fail_with(c, password, user=ALICE[0]):
    r = c.auth_plain(user, password)
    assert r.line.startswith("535 5.7.8"), f"a wrong password got {r!r}, not 535 5.7.8"
    return r


def test_one_stale_password_repeated_is_never_blocked(start_daemon):
    d = start_daemon(guard=LIMIT3)
    start = d.mark()
    # 20 tries in four sessions: a mail program reconnecting now and then
    for _ in range(4):
        c = Conn(d.port)
        assert c.greeting.code == 220, c.greeting
        c.ehlo()
        for _ in range(5):
            fail_with(c, "the-old-password")
        assert c.cmd("NOOP").code == 250       # no 421: not blocked
        c.quit()
    assert greeting_of(d.port).startswith("220 ")
    st = status(d, "127.0.0.1")
    assert st["state"] == "clear", st
    assert st["counters"]["auth_failures"] == 1, st
    assert st["repeats"] == 19, st
    fails = [f for f in d.log_lines("auth", start) if f.get("result") == "fail"]
    assert len(fails) == 20, fails
    assert [f.get("repeat") for f in fails] == [None] + ["yes"] * 19, fails
    # the support desk's words for it
    text = d.ctl("status", "127.0.0.1", check=True).stdout
    assert "19 of the failures were the same wrong password repeated" in text, text
    assert "stale password" in text, text


def test_three_different_wrong_passwords_block(start_daemon):
    d = start_daemon(guard=LIMIT3)
    c = Conn(d.port)
    c.ehlo()
    for pw in ("guess-1", "guess-2", "guess-3"):
        fail_with(c, pw)
    assert c.cmd("NOOP").lines == [REPLY_421]
    c.close()
    assert greeting_of(d.port) == GREETING_554
    st = status(d, "127.0.0.1")
    assert st["state"] == "blocked" and st["block"]["events"] == 3, st
    assert st["repeats"] == 0, st


def test_repeats_between_guesses_do_not_help_the_guesser(start_daemon):
    d = start_daemon(guard=LIMIT3)
    c = Conn(d.port)
    c.ehlo()
    # repeating a guess costs the guesser nothing and gains nothing either
    for pw in ("guess-1", "guess-1", "guess-2", "guess-2", "guess-1"):
        fail_with(c, pw)
    assert c.cmd("NOOP").code == 250
    assert status(d, "127.0.0.1")["repeats"] == 3
    fail_with(c, "guess-3")
    assert c.cmd("NOOP").lines == [REPLY_421]
    c.close()


def test_the_same_password_for_another_user_is_not_a_repeat(start_daemon):
    d = start_daemon(guard=LIMIT3)
    c = Conn(d.port)
    c.ehlo()
    fail_with(c, "shared-old", user="alice@example.test")
    fail_with(c, "shared-old", user="ALICE@example.test")   # the same account
    fail_with(c, "shared-old", user="bob@example.test")
    fail_with(c, "shared-old", user="carol@example.test")
    assert c.cmd("NOOP").lines == [REPLY_421]
    c.close()


def test_repeat_counts_once_no_lets_repeats_block(start_daemon):
    d = start_daemon(guard=dict(LIMIT3, repeat_counts_once="no"))
    c = Conn(d.port)
    c.ehlo()
    for _ in range(3):
        fail_with(c, "the-old-password")
    assert c.cmd("NOOP").lines == [REPLY_421]
    c.close()
    st = wait_until(lambda: (lambda s: s if s["state"] == "blocked" else None)(status(d, "127.0.0.1")))
    assert st["repeats"] == 0, st
