"""STARTTLS, implicit TLS, AUTH PLAIN/LOGIN, 538/530, swaks and openssl s_client."""

import base64
import re
import smtplib
import ssl
import subprocess

import pytest

from conftest import (CLIENT_NAME, HOSTNAME, T, Delivered, free_ports,
                      plain_b64, unverified_context)

OK_235 = (235, b"2.7.0 Authentication successful")
BAD_535 = (535, b"5.7.8 Authentication credentials invalid")
ENC_538 = (538, b"5.7.11 Encryption required for requested authentication mechanism")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def try_auth(s, mech, user, password, initial=True):
    s.user, s.password = user, password
    obj = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
    try:
        return s.auth(mech, obj, initial_response_ok=initial)
    except smtplib.SMTPAuthenticationError as e:
        return (e.smtp_code, e.smtp_error)


def starttls_session(d):
    s = d.smtp()
    s.ehlo()
    code, _ = s.starttls(context=unverified_context())
    assert code == 220
    s.ehlo()
    return s


# ---- STARTTLS


def test_starttls_handshake(daemon):
    with daemon.smtp() as s:
        s.ehlo()
        code, msg = s.starttls(context=unverified_context())
        assert code == 220 and msg.startswith(b"2.0.0"), (code, msg)
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert s.ehlo()[0] == 250


def test_starttls_twice_refused(daemon):
    s = starttls_session(daemon)
    try:
        code, msg = s.docmd("STARTTLS")
        assert code == 503 and msg.startswith(b"5.5.1"), (code, msg)
    finally:
        s.close()


def test_no_starttls_without_cert(start_daemon):
    port = free_ports(1)[0]
    d = start_daemon(tls={"cert": None, "key": None},
                     server={"listen": f"127.0.0.1:{port}/starttls"})
    with smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_NAME, timeout=10 * T) as s:
        s.ehlo()
        assert "starttls" not in s.esmtp_features
        code, msg = s.docmd("STARTTLS")
        assert 500 <= code <= 504 or code == 454, (code, msg)
        # loopback may still AUTH in plaintext (plain_auth_from)
        assert try_auth(s, "PLAIN", "alice@example.test", "alice-secret") == OK_235
    assert d.running()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("initial", [True, False])
def test_auth_after_starttls_right(daemon, mech, initial):
    s = starttls_session(daemon)
    try:
        assert try_auth(s, mech, "alice@example.test", "alice-secret", initial) == OK_235
        # an authenticated session may submit
        assert s.mail("alice@example.test")[0] == 250
    finally:
        s.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("user,password", [
    ("alice@example.test", "wrong-password"),
    ("nobody@example.test", "alice-secret"),
    ("alice@example.test", "bob-secret"),
])
def test_auth_after_starttls_wrong(daemon, mech, user, password):
    s = starttls_session(daemon)
    try:
        assert try_auth(s, mech, user, password) == BAD_535
        # not authenticated: MAIL is refused
        assert s.mail("alice@example.test") == (530, b"5.7.0 Authentication required")
        # the session goes on and a right AUTH still works
        assert try_auth(s, mech, "alice@example.test", "alice-secret") == OK_235
    finally:
        s.close()


def test_auth_login_prompts(daemon):
    s = starttls_session(daemon)
    try:
        code, msg = s.docmd("AUTH", "LOGIN")
        assert code == 334
        assert base64.b64decode(msg).lower().startswith(b"username")
        code, msg = s.docmd(b64("bob@example.test"))
        assert code == 334
        assert base64.b64decode(msg).lower().startswith(b"password")
        assert s.docmd(b64("bob-secret")) == OK_235
    finally:
        s.close()


def test_auth_plain_empty_initial_then_challenge(daemon):
    s = starttls_session(daemon)
    try:
        code, msg = s.docmd("AUTH", "PLAIN")
        assert code == 334, (code, msg)
        assert s.docmd(plain_b64("bob@example.test", "bob-secret")) == OK_235
    finally:
        s.close()


def test_auth_twice_is_503(daemon):
    s = starttls_session(daemon)
    try:
        assert try_auth(s, "PLAIN", "alice@example.test", "alice-secret") == OK_235
        code, msg = s.docmd("AUTH", "PLAIN " + plain_b64("bob@example.test", "bob-secret"))
        assert code == 503 and msg.startswith(b"5.5.1"), (code, msg)
    finally:
        s.close()


def test_auth_unknown_mechanism(daemon):
    s = starttls_session(daemon)
    try:
        code, msg = s.docmd("AUTH", "CRAM-MD5")
        assert code == 504 and msg.startswith(b"5.5.4"), (code, msg)
    finally:
        s.close()


def test_auth_plain_bad_base64_is_501(daemon):
    s = starttls_session(daemon)
    try:
        code, msg = s.docmd("AUTH", "PLAIN !!!not*base64###")
        assert code == 501 and msg.startswith(b"5.5.2"), (code, msg)
        # base64 that decodes but is not authzid\0user\0pass
        code, msg = s.docmd("AUTH", "PLAIN " + b64("just-one-field"))
        assert code in (501, 535), (code, msg)
        assert s.noop()[0] == 250
        assert try_auth(s, "PLAIN", "alice@example.test", "alice-secret") == OK_235
    finally:
        s.close()


def test_auth_login_bad_base64_is_501(daemon):
    s = starttls_session(daemon)
    try:
        assert s.docmd("AUTH", "LOGIN")[0] == 334
        code, msg = s.docmd("@@@@")
        assert code == 501 and msg.startswith(b"5.5.2"), (code, msg)
    finally:
        s.close()


@pytest.mark.parametrize("mech,steps", [("PLAIN", 0), ("LOGIN", 0), ("LOGIN", 1)])
def test_auth_cancel(daemon, mech, steps):
    s = starttls_session(daemon)
    try:
        code, msg = s.docmd("AUTH", mech)
        assert code == 334
        if steps:
            assert s.docmd(b64("alice@example.test"))[0] == 334
        code, msg = s.docmd("*")
        assert code == 501 and re.match(rb"5\.\d\.\d+ ", msg), (code, msg)
        # not authenticated, session goes on
        assert s.mail("alice@example.test")[0] == 530
        assert try_auth(s, "PLAIN", "alice@example.test", "alice-secret") == OK_235
    finally:
        s.close()


# ---- implicit TLS


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_on_implicit_tls_port(daemon, mech):
    with daemon.smtps() as s:
        s.ehlo()
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert try_auth(s, mech, "bob@example.test", "nope") == BAD_535
        assert try_auth(s, mech, "bob@example.test", "bob-secret") == OK_235
        assert s.mail("bob@example.test")[0] == 250


def test_tls_below_1_2_refused(daemon):
    ctx = unverified_context()
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot speak TLS 1.1 as a client")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with smtplib.SMTP_SSL("127.0.0.1", daemon.tls_port, local_hostname=CLIENT_NAME,
                              timeout=10 * T, context=ctx):
            pass


# ---- AUTH before TLS


def test_auth_plaintext_allowed_from_loopback_by_default(daemon):
    with daemon.smtp() as s:
        s.ehlo()
        assert try_auth(s, "PLAIN", "alice@example.test", "alice-secret") == OK_235


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_538_before_tls_when_plain_auth_from_empty(start_daemon, mech):
    d = start_daemon(tls={"plain_auth_from": ""})
    with d.smtp() as s:
        s.ehlo()
        arg = mech + " " + (plain_b64("alice@example.test", "alice-secret")
                            if mech == "PLAIN" else b64("alice@example.test"))
        assert s.docmd("AUTH", arg) == ENC_538
        assert s.docmd("AUTH", mech) == ENC_538
        # after STARTTLS the same AUTH works
        s.starttls(context=unverified_context())
        s.ehlo()
        assert try_auth(s, mech, "alice@example.test", "alice-secret") == OK_235


def test_auth_plaintext_allowed_when_tls_not_required(start_daemon):
    d = start_daemon(tls={"plain_auth_from": "", "require_tls_for_auth": "no"})
    with d.smtp() as s:
        f = s.ehlo() and s.esmtp_features
        assert "auth" in f
        assert try_auth(s, "PLAIN", "alice@example.test", "alice-secret") == OK_235


def test_530_mail_without_auth(daemon):
    with daemon.smtp() as s:
        s.ehlo()
        assert s.mail("alice@example.test") == (530, b"5.7.0 Authentication required")
        # RCPT without a transaction stays a sequence error, never a relay
        code, _ = s.rcpt("bob@example.test")
        assert code in (503, 530)


def test_530_after_starttls_without_auth(daemon):
    s = starttls_session(daemon)
    try:
        assert s.mail("alice@example.test") == (530, b"5.7.0 Authentication required")
    finally:
        s.close()


def test_auth_logged_without_password(daemon):
    start = daemon.mark()
    s = starttls_session(daemon)
    try:
        try_auth(s, "PLAIN", "alice@example.test", "wrong-Pa55word")
        try_auth(s, "LOGIN", "alice@example.test", "alice-secret")
    finally:
        s.close()
    daemon.wait_log(r"event=auth\b.*result=fail\b", start=start)
    daemon.wait_log(r"event=auth\b.*result=ok\b", start=start)
    text = daemon.log(start)
    assert "wrong-Pa55word" not in text and "alice-secret" not in text
    assert b64("alice-secret") not in text
    assert plain_b64("alice@example.test", "wrong-Pa55word") not in text


# ---- STARTTLS injection (CVE-2011-0411 style)


def test_starttls_pipelined_plaintext_discarded(daemon):
    with daemon.raw() as r:
        assert r.read_reply()[0] == 220
        assert r.cmd("EHLO client.test")[0] == 250
        r.send(b"STARTTLS\r\nNOOP\r\n")
        code, lines = r.read_reply()
        assert code == 220, (code, lines)
        # the NOOP is not answered in plaintext ...
        assert r.nothing_for(0.5), f"plaintext after 220: {r.buf!r}"
        r.sock = unverified_context().wrap_socket(r.sock)
        # ... nor after the handshake: the first reply inside TLS is our EHLO's
        code, lines = r.cmd("EHLO client.test")
        assert code == 250 and lines[0].split()[0] == HOSTNAME, (code, lines)
        assert len(lines) > 3, lines
        assert r.nothing_for(0.5), f"extra reply inside TLS: {r.buf!r}"
        assert r.cmd("NOOP")[0] == 250


# ---- real clients


def test_openssl_s_client_starttls(daemon):
    cp = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-name", CLIENT_NAME,
         "-connect", f"127.0.0.1:{daemon.port}", "-crlf", "-ign_eof"],
        input=b"EHLO client.test\nQUIT\n", capture_output=True, timeout=60 * T)
    out = cp.stdout.decode("utf-8", "replace")
    err = cp.stderr.decode("utf-8", "replace")
    assert cp.returncode == 0, (out + err)[-1500:]
    m = re.search(r"Protocol\s*:\s*(TLSv1\.\d)", out)
    assert m and m.group(1) in ("TLSv1.2", "TLSv1.3"), out[-1500:]
    assert re.search(r"Cipher\s*:\s*\S+", out) and "Cipher is (NONE)" not in out, out[-1500:]
    # the EHLO sent inside TLS is answered, with AUTH and without STARTTLS
    # (s_client may echo the tail of the plaintext EHLO reply: skip to ours)
    m = re.search(r"^250-" + re.escape(HOSTNAME) + r"\b.*?^250 .*?$", out, re.M | re.S)
    assert m, out[-1500:]
    ehlo = m.group(0).splitlines()
    assert any("AUTH" in l and "PLAIN" in l for l in ehlo), out[-1500:]
    assert not any("STARTTLS" in l for l in ehlo), out[-1500:]
    assert re.search(r"^221 ", out, re.M), out[-1500:]


def test_openssl_s_client_implicit_tls(daemon):
    cp = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.tls_port}",
         "-crlf", "-ign_eof"],
        input=b"EHLO client.test\nQUIT\n", capture_output=True, timeout=60 * T)
    out = cp.stdout.decode("utf-8", "replace")
    assert cp.returncode == 0, (out + cp.stderr.decode())[-1500:]
    assert re.search(r"Protocol\s*:\s*TLSv1\.[23]", out), out[-1500:]
    assert f"220 {HOSTNAME} ESMTP Portcullis" in out, out[-1500:]
    assert re.search(r"^221 ", out, re.M), out[-1500:]


def swaks(*args, timeout=60):
    return subprocess.run(["swaks", "--helo", CLIENT_NAME, "--timeout", str(30 * T)]
                          + list(args), capture_output=True, timeout=timeout * T)


def test_swaks_starttls_auth_plain(daemon):
    cp = swaks("--server", f"127.0.0.1:{daemon.port}", "-tls",
               "--auth", "PLAIN", "--auth-user", "alice@example.test",
               "--auth-password", "alice-secret",
               "--from", "alice@example.test", "--to", "bob@example.test",
               "--header", "Subject: via swaks", "--body", "hello from swaks")
    out = cp.stdout.decode("utf-8", "replace") + cp.stderr.decode("utf-8", "replace")
    assert cp.returncode == 0, out
    msgs = daemon.messages()
    assert len(msgs) == 1, out
    m = Delivered(msgs[0])
    assert m.return_path == "<alice@example.test>"
    assert m.envelope_to == ["<bob@example.test>"]
    assert re.search(r"\bwith ESMTPSA\b", m.received), m.received
    assert b"\nSubject: via swaks\n" in b"\n" + m.body
    assert b"hello from swaks" in m.body
    qid = re.search(r"<~\s+250 2\.0\.0 Ok: queued as (\S+)", out)
    assert qid and re.search(r"\b" + re.escape(qid.group(1)) + r"\b", m.received), out


def test_swaks_implicit_tls_auth_login(daemon):
    cp = swaks("--server", f"127.0.0.1:{daemon.tls_port}", "--tls-on-connect",
               "--auth", "LOGIN", "--auth-user", "bob@example.test",
               "--auth-password", "bob-secret",
               "--from", "bob@example.test", "--to", "alice@example.test")
    out = cp.stdout.decode("utf-8", "replace") + cp.stderr.decode("utf-8", "replace")
    assert cp.returncode == 0, out
    msgs = daemon.messages()
    assert len(msgs) == 1
    assert Delivered(msgs[0]).envelope_to == ["<alice@example.test>"]


def test_swaks_wrong_password_fails(daemon):
    cp = swaks("--server", f"127.0.0.1:{daemon.port}", "-tls",
               "--auth", "PLAIN", "--auth-user", "alice@example.test",
               "--auth-password", "not-her-password",
               "--from", "alice@example.test", "--to", "bob@example.test")
    out = cp.stdout.decode("utf-8", "replace")
    assert cp.returncode != 0
    assert "535 5.7.8 Authentication credentials invalid" in out, out
    assert daemon.messages() == []
