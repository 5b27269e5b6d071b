"""Relay mode (SPEC §7) with a real Postfix as the next hop, started by the
test in its temporary folder: the message lands in Postfix's queue with the
envelope intact, Postfix's log shows the XFORWARD client, the client's 250
comes only after Postfix's; Postfix stopped -> 451 and nothing lost;
Postfix refusing a recipient -> that RCPT refused."""

import re

import pytest

from conftest import queue_id
from smtputil import wait_until
from mtautil import Postfix, have_postfix

pytestmark = pytest.mark.skipif(not have_postfix(), reason="needs postfix and root")

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: Bob <bob@example.test>\r\n"
       b"Subject: relayed\r\n"
       b"Message-ID: <relay.1@example.test>\r\n"
       b"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
       b"\r\n"
       b"first line\r\n"
       b".leading dot\r\n"
       b"..two dots\r\n"
       b"last line\r\n")


@pytest.fixture
def postfix(tmp_path):
    p = Postfix(tmp_path, refuse=["nobody@example.test"]).start()
    yield p
    p.cleanup()


def relay_daemon(start_daemon, port, **delivery):
    sections = {"mode": "relay", "relay": f"smtp://127.0.0.1:{port}", "relay_tls": "none",
                "relay_timeout": "5s"}
    sections.update(delivery)
    return start_daemon(delivery=sections)


def postfix_body(raw):
    """The message as Postfix holds it, without the Received: Postfix added."""
    lines = raw.split(b"\n")
    assert lines[0].startswith(b"Received: from "), raw[:300]
    i = 1
    while lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\n".join(lines[i:])


def split_received(body):
    """(our Received: header unfolded, the rest)."""
    lines = body.split(b"\n")
    assert lines[0].startswith(b"Received: from "), body[:300]
    i = 1
    while lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b" ".join(lines[:i]).decode(), b"\n".join(lines[i:])


def test_message_lands_in_postfix_queue(start_daemon, postfix):
    d = relay_daemon(start_daemon, postfix.port)
    s = d.authed()
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("bob@example.test")[0] == 250
    assert s.rcpt("carol@example.test")[0] == 250
    code, text = s.data(MSG)
    assert code == 250, (code, text)
    ours = queue_id(text)
    s.quit()

    ids = postfix.queue_ids()
    assert len(ids) == 1, ids
    sender, rcpts, raw = postfix.message(ids[0])
    assert sender == "alice@example.test"
    assert sorted(rcpts) == ["bob@example.test", "carol@example.test"]
    rec, rest = split_received(postfix_body(raw))
    # Only Received: is added in relay mode, and it is ours.
    assert f"id {ours}" in rec and "authenticated user alice@example.test" in rec, rec
    assert b"Return-Path" not in raw and b"X-Envelope-To" not in raw
    # byte-exact (Postfix stores LF line ends; the dots are unstuffed again)
    assert rest == MSG.replace(b"\r\n", b"\n"), rest

    # Postfix saw the real client through XFORWARD, and our id as IDENT
    postfix.wait_log(rf"{ids[0]}: client=.*orig_queue_id={ours}, orig_client=\S+\[127\.0\.0\.1\]")
    # our log names both ids
    line = d.wait_log(rf"event=delivered .*id={ours}.*").group(0)
    assert f"next_id={ids[0]}" in line, line


def test_xforward_carries_client_details(start_daemon, postfix):
    d = relay_daemon(start_daemon, postfix.port)
    s = d.authed()
    client_port = s.sock.getsockname()[1]
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("bob@example.test")[0] == 250
    code, text = s.data(MSG)
    assert code == 250
    ours = queue_id(text)
    s.quit()
    qid = postfix.queue_ids()[0]
    a = postfix.attributes(qid)
    # XFORWARD: the client's HELO, address and port, not ours
    assert a.get("log_helo_name") == "client.test", a
    assert a.get("helo_name") == "mx.test.example", a
    assert a.get("log_client_address") == "127.0.0.1", a
    assert a.get("log_client_port") == str(client_port), a
    assert a.get("log_protocol_name") == "ESMTP", a
    postfix.wait_log(rf"{qid}: client=.*orig_queue_id={ours}, orig_client=unknown\[127\.0\.0\.1\]")


def test_relay_forward_no_sends_no_xforward(start_daemon, postfix):
    d = relay_daemon(start_daemon, postfix.port, relay_forward="no")
    s = d.authed()
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("bob@example.test")[0] == 250
    assert s.data(MSG)[0] == 250
    s.quit()
    qid = postfix.queue_ids()[0]
    assert "log_helo_name" not in postfix.attributes(qid) or \
        postfix.attributes(qid)["log_helo_name"] == "mx.test.example"
    assert "orig_queue_id" not in postfix.log()


def test_refused_recipient_refused_at_rcpt(start_daemon, postfix):
    d = relay_daemon(start_daemon, postfix.port)
    s = d.authed()
    assert s.mail("alice@example.test")[0] == 250
    code, text = s.rcpt("nobody@example.test")
    assert code == 550 and text.startswith(b"5.1.1 "), (code, text)
    assert s.rcpt("bob@example.test")[0] == 250
    code, text = s.data(MSG)
    assert code == 250, (code, text)
    s.quit()
    ids = postfix.queue_ids()
    assert len(ids) == 1
    _, rcpts, _ = postfix.message(ids[0])
    assert rcpts == ["bob@example.test"]


def test_postfix_stopped_gives_451_and_loses_nothing(start_daemon, postfix):
    d = relay_daemon(start_daemon, postfix.port)
    postfix.stop()
    s = d.authed()
    assert s.mail("alice@example.test")[0] == 250
    code, text = s.rcpt("bob@example.test")
    assert code == 451 and text.startswith(b"4.4.1"), (code, text)
    # the session goes on
    assert s.rset()[0] == 250
    assert s.noop()[0] == 250
    s.quit()
    d.wait_log(r"event=relay_down\b")

    # Postfix back: the client's retry goes through (after the backoff)
    postfix.start()

    def retry():
        c = d.authed()
        try:
            c.mail("alice@example.test")
            if c.rcpt("bob@example.test")[0] != 250:
                return False
            code, _ = c.data(MSG)
            return code == 250
        finally:
            c.quit()
    wait_until(retry, timeout=30, interval=0.5, what="a relayed message after Postfix came back")
    assert len(postfix.queue_ids()) == 1
    d.wait_log(r"event=relay_up\b")
    # one line per outage, not one per message
    assert len(d.log_lines("relay_down")) == 1


def test_connections_are_reused(start_daemon, postfix):
    d = relay_daemon(start_daemon, postfix.port, relay_forward="no")
    s = d.authed()
    for i in range(3):
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.data(MSG)[0] == 250
    s.quit()
    wait_until(lambda: len(postfix.queue_ids()) == 3, what="three messages")
    # One worker, one session: one connection carried all three (RSET between).
    connects = re.findall(r"smtpd\[\d+\]: connect from", postfix.log())
    assert 1 <= len(connects) <= 2, postfix.log()[-3000:]
