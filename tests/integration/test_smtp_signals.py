"""SIGHUP reloads (users and configuration) without dropping sessions;
SIGTERM lets an open transaction finish."""

import signal
import smtplib
import socket
import time

import pytest


from conftest import HOSTNAME, T, Delivered, queue_id


def auth_code(d, user, password):
    with d.smtp() as s:
        s.ehlo()
        try:
            return s.auth("PLAIN", lambda c=None: f"\0{user}\0{password}")[0]
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code


def test_sighup_picks_up_new_user(daemon):
    assert auth_code(daemon, "carol@example.test", "carol-secret") == 535
    daemon.add_user("carol@example.test", "carol-secret")
    daemon.reload()
    assert auth_code(daemon, "carol@example.test", "carol-secret") == 235
    assert auth_code(daemon, "alice@example.test", "alice-secret") == 235


def test_sighup_drops_removed_user_and_changed_password(daemon):
    daemon.write_users({"alice@example.test": "new-alice-secret"})
    daemon.reload()
    assert auth_code(daemon, "alice@example.test", "alice-secret") == 535
    assert auth_code(daemon, "alice@example.test", "new-alice-secret") == 235
    assert auth_code(daemon, "bob@example.test", "bob-secret") == 535


def test_sighup_keeps_open_sessions(daemon):
    s = daemon.authed()
    try:
        assert s.mail("alice@example.test")[0] == 250
        daemon.add_user("carol@example.test", "carol-secret")
        daemon.reload()
        assert s.rcpt("bob@example.test")[0] == 250
        code, resp = s.data(b"Subject: across reload\r\n\r\nstill here\r\n")
        assert code == 250, (code, resp)
        assert s.noop()[0] == 250
    finally:
        s.close()
    assert len(daemon.messages()) == 1


def test_sighup_applies_new_config(daemon):
    with daemon.raw() as r:
        assert r.read_line() == f"220 {HOSTNAME} ESMTP Portcullis".encode()
    daemon.write_config(server={"hostname": "mx2.test.example", "max_recipients": "2"})
    daemon.reload()
    with daemon.raw() as r:
        assert r.read_line() == b"220 mx2.test.example ESMTP Portcullis"
    with daemon.authed() as s:
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("a@example.org")[0] == 250
        assert s.rcpt("b@example.org")[0] == 250
        assert s.rcpt("c@example.org") == (452, b"4.5.3 Too many recipients")


def test_sighup_with_broken_config_keeps_old(daemon):
    daemon.write_config(server={"hostname": "broken.test.example", "max_recipients": "lots"})
    start = daemon.mark()
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_log(r"max_recipients", start=start)
    assert daemon.running()
    with daemon.raw() as r:
        assert r.read_line() == f"220 {HOSTNAME} ESMTP Portcullis".encode()
    # a later good file is taken
    daemon.write_config(server={"hostname": "mx3.test.example", "max_recipients": "100"})
    daemon.reload()
    with daemon.raw() as r:
        assert r.read_line() == b"220 mx3.test.example ESMTP Portcullis"


def test_sighup_with_broken_users_file_keeps_old(daemon):
    daemon.users_path.write_text("this line has no colon and no hash\n")
    start = daemon.mark()
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_log(r"level=(warn|error)\b", start=start)
    assert daemon.running()
    assert auth_code(daemon, "alice@example.test", "alice-secret") == 235


def test_sigterm_lets_open_transaction_finish(daemon):
    s = daemon.authed()
    s.sock.settimeout(60 * T)
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("bob@example.test")[0] == 250
    code, _ = s.docmd("DATA")
    assert code == 354
    s.send(b"Subject: during shutdown\r\n\r\nfirst half\r\n")
    start = daemon.mark()
    daemon.send_signal(signal.SIGTERM)
    # let the daemon take the signal in (it may or may not log it at once)
    deadline = time.monotonic() + 3 * T
    while time.monotonic() < deadline and "event=shutdown" not in daemon.log(start):
        time.sleep(0.05)
    time.sleep(0.3)
    assert daemon.running(), "daemon exited with a transaction open"
    # new connections are no longer served
    try:
        c = socket.create_connection(("127.0.0.1", daemon.port), timeout=5 * T)
        c.settimeout(5 * T)
        try:
            data = c.recv(1024)
        except (ConnectionResetError, socket.timeout):
            data = b""
        c.close()
        assert not data.startswith(b"220"), f"new connection greeted during shutdown: {data!r}"
    except ConnectionRefusedError:
        pass
    s.send(b"second half\r\n.\r\n")
    try:
        code, resp = s.getreply()
    except smtplib.SMTPServerDisconnected as e:
        pytest.fail(f"session dropped during shutdown ({e}); log:\n{daemon.log()[-3000:]}")
    assert code == 250, (code, resp)
    qid = queue_id(resp)
    try:
        code, _ = s.docmd("QUIT")
        assert code in (221, 421)
    except smtplib.SMTPServerDisconnected:
        pass
    s.close()
    rc = daemon.proc.wait(timeout=60 * T)
    assert rc == 0, daemon.log()[-3000:]
    msgs = daemon.messages()
    assert len(msgs) == 1
    m = Delivered(msgs[0])
    assert m.body == b"Subject: during shutdown\n\nfirst half\nsecond half\n"
    assert ("id " + qid) in m.received
    assert "event=shutdown" in daemon.log(start)


def test_sigterm_idle_exits_0(daemon):
    with daemon.raw() as r:
        r.read_reply()
    assert daemon.stop(timeout=20) == 0
    assert not daemon.killed


def test_sigint_exits_0(daemon):
    daemon.send_signal(signal.SIGINT)
    assert daemon.proc.wait(timeout=20 * T) == 0


def test_restart_keeps_serving(daemon):
    with daemon.authed() as s:
        s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: 1\r\n\r\n1\r\n")
    daemon.restart()
    with daemon.authed() as s:
        s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: 2\r\n\r\n2\r\n")
    assert len(daemon.messages()) == 2


def test_second_sigterm_mid_message_exits_cleanly(daemon):
    """A second SIGTERM stops at once, while a message is being streamed to
    tmp/: the daemon exits 0 (and clean under the sanitizers: the teardown
    checks), the message is not delivered, and no tmp/ file is left."""
    with daemon.authed() as s:
        s.mail("alice@example.test")
        s.rcpt("bob@example.test")
        code, _ = s.docmd("DATA")
        assert code == 354
        s.send(b"Subject: cut short\r\n\r\n" + (b"y" * 998 + b"\r\n") * 2048)
        start = daemon.mark()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait_log(r"event=shutdown\b", start=start)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=20 * T) == 0
    assert daemon.messages() == []
    assert list((daemon.maildir / "tmp").iterdir()) == []
