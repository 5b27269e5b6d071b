"""Dovecot (SPEC §7, §8) as a real peer, started by the test in its
temporary folder: AUTH PLAIN and LOGIN through Dovecot's auth service,
Dovecot killed -> 454 and no block however many tries, Dovecot back ->
AUTH works without restarting Portcullis; LMTP delivery (TCP and unix
socket) into the mailbox, one recipient per transaction."""

import base64
import smtplib
import threading

import pytest

from conftest import queue_id
from smtputil import wait_until
from mtautil import Dovecot, have_dovecot

pytestmark = pytest.mark.skipif(not have_dovecot(), reason="needs dovecot and root")

USERS = {"alice@example.test": "alice-secret", "bob@example.test": "bob-secret"}

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: Bob <bob@example.test>\r\n"
       b"Subject: over LMTP\r\n"
       b"Message-ID: <lmtp.1@example.test>\r\n"
       b"\r\n"
       b"hello\r\n"
       b".dot\r\n")


@pytest.fixture
def dovecot(tmp_path):
    d = Dovecot(tmp_path, USERS).start()
    yield d
    d.cleanup()


def dovecot_daemon(start_daemon, dv, **more):
    # No users file entry: every password is Dovecot's.
    sections = {"auth": {"backend": "dovecot", "dovecot_socket": str(dv.auth_socket),
                         "failure_delay": "0s"}}
    sections.update(more)
    return start_daemon(users={}, **sections)


def auth_plain(s, user, password):
    return s.docmd("AUTH", "PLAIN " + base64.b64encode(
        f"\0{user}\0{password}".encode()).decode())


def auth_login(s, user, password):
    code, _ = s.docmd("AUTH", "LOGIN")
    assert code == 334
    code, _ = s.docmd(base64.b64encode(user.encode()).decode())
    assert code == 334
    return s.docmd(base64.b64encode(password.encode()).decode())


def test_auth_plain_and_login_through_dovecot(start_daemon, dovecot):
    d = dovecot_daemon(start_daemon, dovecot)
    s = d.smtp()
    s.ehlo()
    assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
    assert auth_plain(s, "alice@example.test", "alice-secret")[0] == 235
    s.quit()
    s = d.smtp()
    s.ehlo()
    assert auth_login(s, "bob@example.test", "bob-secret")[0] == 235
    s.quit()
    for fn in (auth_plain, auth_login):
        s = d.smtp()
        s.ehlo()
        code, text = fn(s, "alice@example.test", "wrong")
        assert (code, text[:5]) == (535, b"5.7.8"), (code, text)
        code, text = fn(s, "nobody@example.test", "x")
        assert code == 535, (code, text)
        s.quit()
    fails = [l for l in d.log_lines("auth") if l.get("result") == "fail"]
    assert len(fails) == 4


def test_user_name_with_tab_is_refused_before_sending(start_daemon, dovecot):
    d = dovecot_daemon(start_daemon, dovecot)
    s = d.smtp()
    s.ehlo()
    code, _ = auth_plain(s, "alice@example.test\tmaster=x", "alice-secret")
    assert code == 535
    s.quit()
    assert "master=x" not in dovecot.log()


def test_mechanisms_are_ours_and_dovecots(start_daemon, tmp_path):
    dv = Dovecot(tmp_path, USERS, mechs="plain").start()
    try:
        d = dovecot_daemon(start_daemon, dv)
        # the first AUTH makes the worker's connection and learns the list
        s = d.smtp()
        s.ehlo()
        assert auth_plain(s, "alice@example.test", "alice-secret")[0] == 235
        s.quit()

        def only_plain():
            c = d.smtp()
            c.ehlo()
            mechs = c.esmtp_features.get("auth", "").split()
            c.quit()
            return mechs == ["PLAIN"]
        wait_until(only_plain, what="AUTH PLAIN only")
    finally:
        dv.cleanup()


def test_dovecot_killed_gives_454_and_no_block_then_recovers(start_daemon, dovecot):
    d = dovecot_daemon(start_daemon, dovecot, guard={"auth_fail_limit": "3"})
    s = d.smtp()
    s.ehlo()
    assert auth_plain(s, "alice@example.test", "alice-secret")[0] == 235
    s.quit()
    dovecot.kill()
    # many tries, far over auth_fail_limit: each 454, none counted
    for i in range(8):
        s = d.smtp()
        code, _ = s.ehlo()
        assert code == 250, "a 454 must never lead to a block"
        code, text = auth_plain(s, "alice@example.test", "alice-secret")
        assert (code, text[:5]) == (454, b"4.7.0"), (i, code, text)
        s.quit()
    d.wait_log(r"event=auth_backend_down\b")
    assert len(d.log_lines("auth_backend_down")) == 1
    assert d.log_lines("block") == []
    # Dovecot back: AUTH works again, no restart of Portcullis
    dovecot.start()

    def works():
        c = d.smtp()
        c.ehlo()
        code, _ = auth_plain(c, "alice@example.test", "alice-secret")
        c.quit()
        return code == 235
    wait_until(works, timeout=30, interval=0.3, what="AUTH after Dovecot came back")
    d.wait_log(r"event=auth_backend_up\b")


def test_delayed_fail_does_not_hold_the_worker(start_daemon, tmp_path):
    # Dovecot delays each failure by 2 s; with one worker, a good login
    # started after a bad one must still be answered first.
    dv = Dovecot(tmp_path, USERS, failure_delay="2s").start()
    try:
        d = dovecot_daemon(start_daemon, dv, server={"workers": "1"})
        order = []
        bad = d.smtp()
        bad.ehlo()
        good = d.smtp()
        good.ehlo()

        def run_bad():
            order.append(("bad", auth_plain(bad, "alice@example.test", "wrong")[0]))
        t = threading.Thread(target=run_bad)
        t.start()
        # the bad password has reached Dovecot (auth_verbose logs it at
        # once; the FAIL itself comes 2 s later)
        wait_until(lambda: "mismatch" in dv.log(), what="Dovecot's password mismatch")
        order.append(("good", auth_plain(good, "bob@example.test", "bob-secret")[0]))
        t.join(timeout=30)
        assert ("good", 235) in order and ("bad", 535) in order, order
        assert order[0] == ("good", 235), order
        bad.quit()
        good.quit()
    finally:
        dv.cleanup()


# ---- LMTP ---------------------------------------------------------------


def lmtp_daemon(start_daemon, dv, relay):
    return dovecot_daemon(start_daemon, dv, delivery={
        "mode": "relay", "relay": relay, "relay_tls": "none", "relay_timeout": "5s"})


@pytest.mark.parametrize("how", ["tcp", "unix"])
def test_lmtp_delivery_lands_in_mailbox(start_daemon, dovecot, how):
    relay = (f"lmtp://127.0.0.1:{dovecot.lmtp_port}" if how == "tcp"
             else f"lmtp:unix:{dovecot.lmtp_socket}")
    d = lmtp_daemon(start_daemon, dovecot, relay)
    s = d.smtp()
    s.ehlo()
    assert auth_plain(s, "alice@example.test", "alice-secret")[0] == 235
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("bob@example.test")[0] == 250
    # one recipient per LMTP transaction
    code, text = s.rcpt("alice@example.test")
    assert (code, text[:5]) == (452, b"4.5.3"), (code, text)
    code, text = s.data(MSG)
    assert code == 250, (code, text)
    ours = queue_id(text)
    # the client sends the rest in a new transaction
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("alice@example.test")[0] == 250
    assert s.data(MSG)[0] == 250
    s.quit()
    for user in ("bob@example.test", "alice@example.test"):
        files = wait_until(lambda: dovecot.mailbox(user), what=f"{user}'s mail")
        assert len(files) == 1, files
        data = files[0].read_bytes()
        assert data.endswith(MSG.replace(b"\r\n", b"\n")), data
        assert b"Return-Path: <alice@example.test>" in data   # Dovecot's own
        assert b"X-Envelope-To" not in data
    assert ours.encode() in dovecot.mailbox("bob@example.test")[0].read_bytes()


def test_lmtp_unknown_user_refused_at_rcpt(start_daemon, tmp_path):
    dv = Dovecot(tmp_path, USERS)
    # a userdb that knows only the passwd-file's users
    dv.conf.write_text(dv.conf.read_text().replace(
        "driver = static\n  args = uid=dovecot gid=dovecot home=" + str(dv.dir) +
        "/home/%u allow_all_users=yes",
        "driver = passwd-file\n  args = username_format=%u " + str(dv.dir) + "/passwd\n"
        "  override_fields = uid=dovecot gid=dovecot home=" + str(dv.dir) + "/home/%u"))
    dv.start()
    try:
        d = lmtp_daemon(start_daemon, dv, f"lmtp://127.0.0.1:{dv.lmtp_port}")
        s = d.smtp()
        s.ehlo()
        assert auth_plain(s, "alice@example.test", "alice-secret")[0] == 235
        assert s.mail("alice@example.test")[0] == 250
        code, text = s.rcpt("nobody@example.test")
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.data(MSG)[0] == 250
        s.quit()
        wait_until(lambda: dv.mailbox("bob@example.test"), what="bob's mail")
    finally:
        dv.cleanup()
