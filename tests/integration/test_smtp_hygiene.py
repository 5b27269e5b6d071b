"""Protocol hygiene found by real clients and scanners (issue 11 items 7-10):
the HELO name is a domain or an address literal, AUTH PLAIN for another
identity is a counted 535, a NUL in the body refuses the message, and the
Received: header names the protocol as RFC 6531 registers it."""

from conftest import Delivered
from smtputil import Client


# ---- item 8: the HELO name -----------------------------------------------

BAD_HELO = [b"caf\xe9.example",            # Latin-1, not UTF-8
            b"x\x1b[31mred",                # a terminal escape
            b"a..b", b"host;rm", b"<host>", b"[192.0.2.300]"]
GOOD_HELO = [b"client.test", b"DESKTOP_4F2A", b"[127.0.0.1]", b"[IPv6:::1]",
             b"caf\xc3\xa9.example"]


def test_helo_must_be_domain_or_literal(daemon):
    with Client(daemon.port) as c:
        for verb in (b"EHLO", b"HELO"):
            for name in BAD_HELO:
                r = c.cmd(verb + b" " + name)
                assert r.line.startswith("501 5.5.4"), (verb, name, r)
            for name in GOOD_HELO:
                r = c.cmd(verb + b" " + name)
                assert r.code == 250, (verb, name, r)


# ---- item 7: Received: says UTF8SMTPSA for an SMTPUTF8 transaction --------

def test_received_protocol_for_smtputf8(daemon):
    import re
    for utf8 in (True, False):
        with daemon.authed(tls=True) as s:
            s.command_encoding = "utf-8"
            params = " SMTPUTF8" if utf8 else ""
            assert s.docmd("MAIL", f"FROM:<alice@example.test>{params}")[0] == 250
            assert s.rcpt("bob@example.test")[0] == 250
            assert s.data(b"Subject: x\r\n\r\nhej\r\n")[0] == 250
    first, second = (Delivered(m) for m in daemon.messages())
    assert re.search(r"\bwith UTF8SMTPSA\b", first.received), first.received
    assert re.search(r"\bwith ESMTPSA\b", second.received), second.received


# ---- item 9: AUTH PLAIN for another identity ------------------------------

def test_auth_plain_other_identity_is_a_counted_535(start_daemon):
    from guardutil import GREETING_554
    from smtputil import plain_b64
    d = start_daemon(guard={"auth_fail_limit": "2", "ban_durations": "1h"})
    start = d.mark()
    with Client(d.port) as c:
        c.ehlo()
        # the right password of alice, asking to act as bob
        r = c.cmd("AUTH PLAIN " + plain_b64("alice@example.test", d.users["alice@example.test"],
                                            authzid="bob@example.test"))
        assert r.line.startswith("535 5.7.8"), r
        assert d.ctl_json("stats")["auth_fail"] == 1
        # the same identity twice is fine (RFC 4616)
        r = c.cmd("AUTH PLAIN " + plain_b64("alice@example.test", d.users["alice@example.test"],
                                            authzid="alice@example.test"))
        assert r.code == 235, r
    lines = [r for r in d.log_lines("auth", start) if r.get("result") == "fail"]
    assert lines and lines[0].get("why") == "authzid" and lines[0]["user"] == "alice@example.test"
    # it counts toward auth_fail_limit like any failed AUTH
    with Client(d.port) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + plain_b64("alice@example.test", "whatever", authzid="root"))
        assert r.line.startswith("535 5.7.8"), r
    with Client(d.port) as c:
        assert c.greeting.lines == [GREETING_554], c.greeting


# ---- item 10: a NUL in the body refuses the message -----------------------

def test_nul_in_body_refused(daemon):
    with Client(daemon.port) as c:
        c.ehlo()
        assert c.auth_plain("alice@example.test", daemon.users["alice@example.test"]).code == 235
        for body in (b"Subject: nul\r\n\r\nbefore\0after\r\n", b"\0\r\n"):
            assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
            assert c.cmd("RCPT TO:<bob@example.test>").code == 250
            assert c.cmd("DATA").code == 354
            r = c.cmd(body + b".")
            assert r.line.startswith("550 5.6.0"), r
        # the session goes on, and a clean message is still taken
        assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        assert c.cmd(b"Subject: clean\r\n\r\nok\r\n.").code == 250
    msgs = daemon.messages()
    assert len(msgs) == 1 and b"\0" not in msgs[0], msgs
