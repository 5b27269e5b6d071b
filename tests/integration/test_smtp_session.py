"""SMTP session basics: greeting, EHLO/HELO, the simple verbs, limits, timeouts."""

import re
import smtplib
import time

import pytest


from conftest import CLIENT_NAME, HOSTNAME, T, unverified_context

GREETING = f"220 {HOSTNAME} ESMTP Portcullis"


def test_greeting_exact(daemon):
    with daemon.raw() as r:
        line = r.read_line()
        assert line == GREETING.encode()
        # nothing but the greeting before the client speaks
        assert r.nothing_for(0.3)


def test_greeting_on_implicit_tls_port(daemon):
    with daemon.raw(tls=True) as r:
        assert r.read_line() == GREETING.encode()
        assert r.sock.version() in ("TLSv1.2", "TLSv1.3")


def test_greeting_smtplib(daemon):
    s = smtplib.SMTP(local_hostname=CLIENT_NAME, timeout=10 * T)
    try:
        code, msg = s.connect("127.0.0.1", daemon.port)
        assert (code, msg) == (220, f"{HOSTNAME} ESMTP Portcullis".encode())
    finally:
        s.close()


def ehlo_features(s):
    code, msg = s.ehlo(CLIENT_NAME)
    assert code == 250, msg
    first = msg.decode().split("\n")[0]
    assert first.split()[0] == HOSTNAME, f"EHLO reply does not start with the hostname: {first!r}"
    return s.esmtp_features


def test_ehlo_extensions_starttls_port(daemon):
    with daemon.smtp() as s:
        f = ehlo_features(s)
        assert "pipelining" in f
        assert f.get("size") == str(25 * 1024 * 1024)
        assert "8bitmime" in f
        assert "smtputf8" in f
        assert "enhancedstatuscodes" in f
        assert "starttls" in f
        # loopback is in plain_auth_from: AUTH is offered without TLS
        assert "auth" in f
        assert set(f["auth"].upper().split()) == {"PLAIN", "LOGIN"}


def test_ehlo_size_follows_config(start_daemon):
    d = start_daemon(server={"max_message_size": "64K"})
    with d.smtp() as s:
        assert ehlo_features(s).get("size") == "65536"


def test_ehlo_after_starttls(daemon):
    with daemon.smtp() as s:
        ehlo_features(s)
        code, msg = s.starttls(context=unverified_context())
        assert code == 220
        f = ehlo_features(s)
        assert "starttls" not in f, "STARTTLS offered again inside TLS"
        assert set(f["auth"].upper().split()) == {"PLAIN", "LOGIN"}
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes"):
            assert ext in f


def test_ehlo_implicit_tls_port(daemon):
    with daemon.smtps() as s:
        f = ehlo_features(s)
        assert "starttls" not in f
        assert set(f["auth"].upper().split()) == {"PLAIN", "LOGIN"}
        assert f.get("size") == str(25 * 1024 * 1024)


def test_no_auth_offered_before_tls_when_required(start_daemon):
    d = start_daemon(tls={"plain_auth_from": "", "require_tls_for_auth": "yes"})
    with d.smtp() as s:
        f = ehlo_features(s)
        assert "starttls" in f
        assert "auth" not in f, f"AUTH offered before TLS: {f.get('auth')!r}"
        s.starttls(context=unverified_context())
        f = ehlo_features(s)
        assert set(f["auth"].upper().split()) == {"PLAIN", "LOGIN"}


def test_auth_mechanisms_follow_config(start_daemon):
    d = start_daemon(auth={"mechanisms": "PLAIN"})
    with d.smtp() as s:
        assert ehlo_features(s)["auth"].upper().split() == ["PLAIN"]


def test_helo(daemon):
    with daemon.smtp() as s:
        code, msg = s.helo(CLIENT_NAME)
        assert code == 250
        assert msg.decode().split()[0] == HOSTNAME
        # HELO gives no extensions
        assert not s.does_esmtp


def test_ehlo_without_argument_is_501(daemon):
    with daemon.raw() as r:
        r.read_reply()
        code, lines = r.cmd("EHLO")
        assert code == 501 and lines[0].startswith("5.5."), (code, lines)
        code, lines = r.cmd("HELO")
        assert code == 501 and lines[0].startswith("5.5."), (code, lines)


def test_simple_verbs(daemon):
    with daemon.smtp() as s:
        s.ehlo()
        code, msg = s.noop()
        assert code == 250 and msg.startswith(b"2.0.0"), (code, msg)
        code, msg = s.rset()
        assert code == 250 and msg.startswith(b"2.0.0"), (code, msg)
        code, msg = s.verify("alice@example.test")
        assert code == 252 and msg.startswith(b"2."), (code, msg)
        code, msg = s.docmd("VRFY")
        assert code in (501, 252), (code, msg)
        code, msg = s.docmd("HELP")
        assert code == 214, (code, msg)
        code, msg = s.docmd("noop")  # verbs are case-insensitive
        assert code == 250
        code, msg = s.quit()
        assert code == 221 and msg.startswith(b"2.0.0"), (code, msg)


def test_quit_closes(daemon):
    with daemon.raw() as r:
        r.read_reply()
        code, lines = r.cmd("QUIT")
        assert code == 221
        assert r.read_until_closed(timeout=10) == b""


def test_unknown_command(daemon):
    with daemon.smtp() as s:
        s.ehlo()
        code, msg = s.docmd("FROBNICATE", "now")
        assert code in (500, 502), (code, msg)
        assert re.match(rb"5\.5\.\d ", msg), msg
        # the session goes on
        assert s.noop()[0] == 250


def test_rset_clears_transaction(daemon):
    s = daemon.authed()
    try:
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.rset()[0] == 250
        code, msg = s.docmd("DATA")
        assert code in (503, 554), (code, msg)
        assert msg.startswith(b"5.5.1"), msg
        # and a new transaction works
        assert s.mail("alice@example.test")[0] == 250
    finally:
        s.close()


def test_bad_sequence(daemon):
    with daemon.raw() as r:
        r.read_reply()
        code, lines = r.cmd("MAIL FROM:<alice@example.test>")
        # before EHLO: a sequence error (or, checked first, the missing AUTH)
        assert (code == 503 and lines[0].startswith("5.5.1")) or \
            (code, lines) == (530, ["5.7.0 Authentication required"]), (code, lines)
        r.cmd("EHLO client.test")
        assert r.auth_plain("alice@example.test", "alice-secret")[0] == 235
        code, lines = r.cmd("RCPT TO:<bob@example.test>")
        assert code == 503 and lines[0].startswith("5.5.1"), (code, lines)
        code, lines = r.cmd("DATA")
        assert code in (503, 554) and lines[0].startswith("5.5.1"), (code, lines)
        assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        code, lines = r.cmd("MAIL FROM:<alice@example.test>")
        assert code == 503 and lines[0].startswith("5.5.1"), (code, lines)
        code, lines = r.cmd("DATA")
        assert code in (503, 554) and lines[0].startswith("5.5.1"), (code, lines)


def test_mail_syntax_errors(daemon):
    s = daemon.authed()
    try:
        # a syntax error: 501 5.5.x, or 501/553 with a 5.1.x address status
        code, msg = s.docmd("MAIL", "FROM:alice@example.test-without-brackets")
        assert code in (501, 553) and re.match(rb"5\.[15]\.\d+ ", msg), (code, msg)
        code, msg = s.docmd("MAIL", "FROM:<alice@example.test> FROBNICATE=1")
        assert code in (555, 501) and msg.startswith(b"5.5."), (code, msg)
        assert s.mail("alice@example.test")[0] == 250
        code, msg = s.docmd("RCPT", "TO:<unterminated@example.test")
        assert code in (501, 553) and re.match(rb"5\.[15]\.\d+ ", msg), (code, msg)
        assert s.rcpt("bob@example.test")[0] == 250
    finally:
        s.close()


def test_command_line_512_is_accepted(daemon):
    with daemon.raw() as r:
        r.read_reply()
        line = b"NOOP " + b"x" * (512 - 2 - 5)
        assert len(line) + 2 == 512
        code, lines = r.cmd(line)
        assert code == 250, (code, lines)


def test_command_line_over_512_is_500(daemon):
    with daemon.raw() as r:
        r.read_reply()
        line = b"NOOP " + b"x" * (513 - 2 - 5)
        assert len(line) + 2 == 513
        code, lines = r.cmd(line)
        assert (code, lines) == (500, ["5.5.2 Line too long"])
        # the rest of the long line is not taken as a command: exactly one
        # reply for the next command
        assert r.cmd("NOOP")[0] == 250
        assert r.nothing_for(0.5)


def test_very_long_command_line(daemon):
    with daemon.raw() as r:
        r.read_reply()
        r.send(b"MAIL FROM:<" + b"a" * 20000 + b"@example.test>\r\n")
        code, lines = r.read_reply()
        assert (code, lines) == (500, ["5.5.2 Line too long"])
        assert r.cmd("NOOP")[0] == 250
        assert r.nothing_for(0.5)


def test_command_timeout(start_daemon):
    d = start_daemon(server={"timeout_command": "2s"})
    with d.raw() as r:
        r.read_reply()
        t0 = time.monotonic()
        rest = r.read_until_closed(timeout=30 * T)
        assert rest == b"" or rest.startswith(b"421 4."), rest
        assert time.monotonic() - t0 >= 1.5


def test_max_clients(start_daemon):
    d = start_daemon(server={"max_clients": "3"})
    conns = []
    try:
        for _ in range(3):
            r = d.raw()
            conns.append(r)
            assert r.read_reply()[0] == 220
        extra = d.raw()
        conns.append(extra)
        code, lines = extra.read_reply()
        assert (code, lines) == (421, [f"4.3.2 {HOSTNAME} Service not available, too busy"])
        assert extra.read_until_closed(timeout=10) == b""
        # one leaves: a new client is served again
        conns[0].cmd("QUIT")
        conns[0].close()
        deadline = time.monotonic() + 10 * T
        while True:
            r = d.raw()
            conns.append(r)
            code, lines = r.read_reply()
            if code == 220 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert code == 220, (code, lines)
    finally:
        for r in conns:
            r.close()


def test_connect_and_close_logged(daemon):
    start = daemon.mark()
    with daemon.raw() as r:
        r.read_reply()
        r.cmd("QUIT")
    daemon.wait_log(r"event=connect\b.*ip=127\.0\.0\.1", start=start)
    daemon.wait_log(r"event=close\b", start=start)


@pytest.mark.parametrize("how", ["implicit", "starttls"])
def test_quit_inside_tls_gets_221(daemon, how):
    if how == "implicit":
        r = daemon.raw(tls=True)
        assert r.read_reply()[0] == 220
    else:
        r = daemon.raw()
        assert r.read_reply()[0] == 220
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("STARTTLS")[0] == 220
        r.sock = unverified_context().wrap_socket(r.sock)
    with r:
        assert r.cmd("EHLO client.test")[0] == 250
        code, lines = r.cmd("QUIT")
        assert code == 221 and lines[0].startswith("2.0.0"), (code, lines)


def test_pipelined_quit_inside_tls_answered(daemon):
    with daemon.raw(tls=True) as r:
        assert r.read_reply()[0] == 220
        r.send(b"EHLO client.test\r\nNOOP\r\nQUIT\r\n")
        assert r.read_reply()[0] == 250
        assert r.read_reply()[0] == 250
        assert r.read_reply()[0] == 221
