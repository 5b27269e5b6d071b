"""The repeat and account rules of issue 14 (SPEC §4) with Dovecot as the
auth backend, a real one started in the test's folder: they work as with
the users file. A spray over six addresses locks the account for strangers
(their right password gets 535 with no check), the familiar address still
logs in; a stale password repeated counts once; Dovecot down gives 454s
that count toward neither the address nor the account."""

import pytest

from guardutil import Conn
from mtautil import Dovecot, have_dovecot

pytestmark = pytest.mark.skipif(not have_dovecot(), reason="needs dovecot and root")

USERS = {"alice@example.test": "alice-secret", "bob@example.test": "bob-secret"}
ACCOUNT = {"account_fail_limit": "6", "account_fail_window": "10m",
           "account_lock": "1h", "familiar_for": "30d"}
OWNER = "127.0.0.2"
BOTS = [f"127.0.0.{i}" for i in range(10, 16)]
STRANGER = "127.0.0.20"


@pytest.fixture
def dovecot(tmp_path):
    d = Dovecot(tmp_path, USERS).start()
    yield d
    d.cleanup()


def dovecot_daemon(start_daemon, dv, **guard):
    return start_daemon(users={}, auth={"backend": "dovecot", "dovecot_socket": str(dv.auth_socket),
                                        "failure_delay": "0s"}, guard=guard)


def auth(d, source, user, password):
    c = Conn(d.port, source=source)
    try:
        assert c.greeting.code == 220, c.greeting
        c.ehlo()
        return c.auth_plain(user, password)
    finally:
        c.quit()


def test_account_lock_with_dovecot(start_daemon, dovecot):
    d = dovecot_daemon(start_daemon, dovecot, **ACCOUNT)
    assert auth(d, OWNER, "alice@example.test", "alice-secret").code == 235
    start = d.mark()
    for i, bot in enumerate(BOTS):
        r = auth(d, bot, "alice@example.test", f"spray-{i}")
        assert r.line.startswith("535 5.7.8"), r
    d.wait_log(r"event=account_lock\b.*account=alice@example\.test", start=start)
    assert d.ctl_json("account", "alice@example.test")["state"] == "locked"

    # a stranger with the right password: 535, refused before Dovecot is asked
    locked_before = d.ctl_json("stats")["auth_locked"]
    r = auth(d, STRANGER, "alice@example.test", "alice-secret")
    assert r.line.startswith("535 5.7.8"), r
    assert d.ctl_json("stats")["auth_locked"] == locked_before + 1
    fails = [x for x in d.log_lines("auth", start) if x.get("result") == "fail"]
    assert fails[-1].get("locked") == "yes" and fails[-1]["ip"] == STRANGER, fails[-1]
    # the owner's familiar address still logs in through Dovecot
    assert auth(d, OWNER, "alice@example.test", "alice-secret").code == 235
    # another account is untouched
    assert auth(d, STRANGER, "bob@example.test", "bob-secret").code == 235


def test_stale_password_counts_once_with_dovecot(start_daemon, dovecot):
    d = dovecot_daemon(start_daemon, dovecot, auth_fail_limit="3")
    for _ in range(8):
        r = auth(d, STRANGER, "bob@example.test", "last-years-password")
        assert r.line.startswith("535 5.7.8"), r
    st = d.ctl_json("status", STRANGER)
    assert st["state"] == "clear" and st["repeats"] == 7, st
    assert d.log_lines("block") == []
    # different wrong passwords are a guesser: blocked at the limit
    for i in range(2):
        assert auth(d, STRANGER, "bob@example.test", f"guess-{i}").line.startswith("535")
    d.wait_log(r"event=block\b")


def test_dovecot_down_counts_toward_no_account(start_daemon, dovecot):
    d = dovecot_daemon(start_daemon, dovecot, auth_fail_limit="3", account_fail_limit="3",
                       account_fail_window="10m", account_lock="1h")
    dovecot.kill()
    for i, bot in enumerate(BOTS):
        r = auth(d, bot, "alice@example.test", f"try-{i}")
        assert r.code == 454, r
    doc = d.ctl_json("account", "alice@example.test")
    assert doc["state"] == "clear" and doc["failures"] == 0, doc
    assert d.log_lines("account_lock") == [] and d.log_lines("block") == []
