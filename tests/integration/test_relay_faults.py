"""Relay mode against a scripted next hop, for the faults a real Postfix
will not produce on demand: 4xx/5xx at each step, silence, a drop in the
middle of DATA, STARTTLS offered or not, a certificate that does not
verify. Always: never a 250 for a message the next hop did not take, the
client's session goes on, the daemon does not crash (the fixture checks)."""

import smtplib
import subprocess

import pytest

from mtautil import FakeHop

MSG = b"Subject: fault\r\n\r\nbody line\r\n.dot line\r\n"


@pytest.fixture
def hops():
    made = []

    def make(**kw):
        h = FakeHop(**kw)
        made.append(h)
        return h
    yield make
    for h in made:
        h.close()


def relay_to(start_daemon, hop, workers=2, **delivery):
    sections = {"mode": "relay", "relay": f"smtp://127.0.0.1:{hop.port}",
                "relay_tls": "none", "relay_timeout": "2s"}
    sections.update(delivery)
    return start_daemon(delivery=sections, server={"workers": str(workers)})


def attempt(d, rcpts=("bob@example.test",)):
    """One transaction; returns the replies: [mail, rcpt..., data] (data
    None when no recipient was taken). Checks the session goes on."""
    s = d.authed()
    out = [s.mail("alice@example.test")]
    ok = 0
    for r in rcpts:
        out.append(s.rcpt(r))
        ok += out[-1][0] == 250
    if ok:
        try:
            out.append(s.data(MSG))
        except smtplib.SMTPDataError as e:
            out.append((e.smtp_code, e.smtp_error))
    else:
        out.append(None)
    assert s.noop()[0] == 250, "the session must go on"
    s.quit()
    return out


@pytest.mark.parametrize("step,reply,where,code,enh", [
    ("mail", "451 4.3.2 try later", 1, 451, b"4.3.2"),
    ("mail", "553 5.1.8 bad sender", 1, 553, b"5.1.8"),
    ("rcpt", "450 4.2.0 greylisted", 1, 450, b"4.2.0"),
    ("rcpt", "550 5.1.1 unknown user", 1, 550, b"5.1.1"),
    ("data", "451 4.3.0 no data now", 2, 451, b"4.3.0"),
    ("data", "554 5.7.1 no data for you", 2, 554, b"5.7.1"),
    ("dot", "452 4.3.1 queue full", 2, 451, b"4.3.0"),
    ("dot", "552 5.3.4 too big", 2, 554, b"5.3.4"),
    ("dot", "550 no enhanced code", 2, 554, b"5.0.0"),
])
def test_refusal_at_each_step(start_daemon, hops, step, reply, where, code, enh):
    hop = hops(script={step: reply})
    d = relay_to(start_daemon, hop)
    out = attempt(d)
    got = out[where]
    assert got is not None and got[0] == code and got[1].startswith(enh), out
    assert all(r is None or r[0] != 250 for r in out[2:]), out
    assert hop.messages() == []


@pytest.mark.parametrize("step,enh", [("greeting", b"4.4.1"), ("ehlo", b"4.4.1"),
                                      ("mail", b"4.4.1"), ("rcpt", b"4.4.2"),
                                      ("dot", b"4.4.2")])
def test_silent_next_hop(start_daemon, hops, step, enh):
    hop = hops(script={step: "silent"})
    d = relay_to(start_daemon, hop)
    out = attempt(d)
    replies = [r for r in out[1:] if r is not None]
    assert replies[-1][0] == 451 and replies[-1][1].startswith(enh), out
    assert all(r[0] != 250 for r in replies[-1:]), out
    assert hop.messages() == []


@pytest.mark.parametrize("step", ["greeting", "mail", "rcpt", "data", "dot"])
def test_next_hop_hangs_up(start_daemon, hops, step):
    hop = hops(script={step: "close"})
    d = relay_to(start_daemon, hop)
    out = attempt(d)
    replies = [r for r in out[1:] if r is not None]
    assert replies[-1][0] == 451, out
    assert hop.messages() == []


def test_drop_in_the_middle_of_data(start_daemon, hops):
    hop = hops(drop_in_data=200_000)
    d = relay_to(start_daemon, hop)
    s = d.authed()
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("bob@example.test")[0] == 250
    big = b"Subject: big\r\n\r\n" + b"x" * 76 + b"\r\n"
    big = big + (b"y" * 76 + b"\r\n") * 20000
    code, text = s.data(big)
    assert code == 451 and text.startswith(b"4.4.2"), (code, text)
    assert s.noop()[0] == 250
    s.quit()
    assert hop.messages() == []


def test_unreachable_next_hop(start_daemon, hops):
    hop = hops()
    hop.close()     # nothing listens on its port now
    d = relay_to(start_daemon, hop)
    out = attempt(d)
    assert out[1][0] == 451 and out[1][1].startswith(b"4.4.1"), out


def test_next_hop_closing_an_idle_connection_is_no_failure(start_daemon, hops):
    # The hop hangs up after each message (as Postfix does when its idle
    # timeout runs out): the next message takes a new connection, unharmed.
    hop = hops(script={"after_dot": "close"})
    d = relay_to(start_daemon, hop, workers=1)
    for _ in range(3):
        assert attempt(d)[-1][0] == 250
    assert len(hop.messages()) == 3
    assert len(hop.sessions) == 3
    assert d.log_lines("relay_down") == []


def test_finished_transactions_need_no_rset(start_daemon, hops):
    hop = hops()
    d = relay_to(start_daemon, hop, workers=1)
    for _ in range(3):
        assert attempt(d)[-1][0] == 250
    assert len(hop.sessions) == 1
    cmds = [c.split()[0] for c in hop.sessions[0]["commands"]]
    assert cmds.count("EHLO") == 1 and cmds.count("MAIL") == 3 and "RSET" not in cmds, cmds
    # XFORWARD: one command per message when it fits
    assert cmds.count("XFORWARD") == 3, cmds


@pytest.mark.parametrize("pipelining", [True, False])
def test_pipelining_only_when_offered(start_daemon, hops, pipelining):
    hop = hops(pipelining=pipelining)
    d = relay_to(start_daemon, hop, workers=1)
    for _ in range(2):
        assert attempt(d, rcpts=("bob@example.test", "carol@example.test"))[-1][0] == 250
    (sess,) = hop.sessions
    # XFORWARD, MAIL and the first RCPT arrive together only with PIPELINING
    grouped = [c for c, b in zip(sess["commands"], sess["buffered"])
               if c.startswith(("XFORWARD", "MAIL")) and b > 0]
    assert bool(grouped) == pipelining, list(zip(sess["commands"], sess["buffered"]))
    assert [m.count(b"fault") for m in hop.messages()] == [1, 1]


def test_refused_sender_then_next_message_on_the_same_connection(start_daemon, hops):
    hop = hops(script={"mail": "451 4.3.2 later"})
    d = relay_to(start_daemon, hop, workers=1)
    assert attempt(d)[1][0] == 451
    hop.script.pop("mail")
    assert attempt(d)[-1][0] == 250
    # RSET made the connection ready again: one connection for both
    assert len(hop.sessions) == 1, [x["commands"] for x in hop.sessions]
    assert "RSET" in hop.sessions[0]["commands"]


def test_dot_stuffing_and_received_only(start_daemon, hops):
    hop = hops()
    d = relay_to(start_daemon, hop)
    s = d.authed()
    s.mail("alice@example.test")
    s.rcpt("bob@example.test")
    body = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n"
    code, text = s.data(body)
    assert code == 250, (code, text)
    s.quit()
    (m,) = hop.messages()
    assert m.startswith(b"Received: from client.test "), m[:200]
    assert b"Return-Path" not in m and b"X-Envelope-To" not in m
    # on the wire, dot-stuffed again
    assert m.endswith(b"Subject: dots\r\n\r\n..\r\n...\r\n..x\r\nend\r\n"), m


# ---- TLS to the next hop ---------------------------------------------------


def make_cert(tmp_path, name):
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_may_uses_starttls_when_offered(start_daemon, hops, tmp_path):
    cert, key = make_cert(tmp_path, "hop")
    hop = hops(starttls=True, cert=str(cert), key=str(key))
    d = relay_to(start_daemon, hop, relay_tls="may")
    assert attempt(d)[-1][0] == 250
    assert hop.sessions[0]["tls"] is True
    assert [c.split()[0] for c in hop.sessions[0]["commands"][:3]] == ["EHLO", "STARTTLS", "EHLO"]


def test_may_goes_plain_when_not_offered(start_daemon, hops):
    hop = hops(starttls=False)
    d = relay_to(start_daemon, hop, relay_tls="may")
    assert attempt(d)[-1][0] == 250
    assert hop.sessions[0]["tls"] is False


def test_encrypt_refuses_a_hop_without_starttls(start_daemon, hops):
    hop = hops(starttls=False)
    d = relay_to(start_daemon, hop, relay_tls="encrypt")
    out = attempt(d)
    assert out[1][0] == 451 and out[1][1].startswith(b"4.4.1"), out
    assert not any(c.startswith("MAIL") for s in hop.sessions for c in s["commands"])


def test_verify_refuses_a_certificate_it_cannot_check(start_daemon, hops, tmp_path):
    cert, key = make_cert(tmp_path, "hop")
    other, _ = make_cert(tmp_path, "other-ca")
    hop = hops(starttls=True, cert=str(cert), key=str(key))
    d = relay_to(start_daemon, hop, relay_tls="verify", relay_ca=str(other))
    out = attempt(d)
    assert out[1][0] == 451 and out[1][1].startswith(b"4.4.1"), out
    assert hop.messages() == []
    assert d.log_lines("relay_down")


def test_verify_accepts_the_right_certificate(start_daemon, hops, tmp_path):
    cert, key = make_cert(tmp_path, "hop")
    hop = hops(starttls=True, cert=str(cert), key=str(key))
    d = relay_to(start_daemon, hop, relay_tls="verify", relay_ca=str(cert))
    assert attempt(d)[-1][0] == 250
    assert hop.sessions[0]["tls"] is True


def test_client_gone_in_mid_data_leaves_nothing_at_the_next_hop(start_daemon, hops):
    import socket
    hop = hops()
    d = relay_to(start_daemon, hop, workers=1)
    s = d.authed()
    assert s.mail("alice@example.test")[0] == 250
    assert s.rcpt("bob@example.test")[0] == 250
    code, _ = s.docmd("DATA")
    assert code == 354
    s.send(b"Subject: half\r\n\r\n" + b"z" * 70 + b"\r\n")
    s.sock.shutdown(socket.SHUT_RDWR)
    s.close()
    # the next message goes through; the half one never got its dot
    assert attempt(d)[-1][0] == 250
    assert len(hop.messages()) == 1
    assert b"half" not in hop.messages()[0]


def test_check_refuses_an_unreadable_relay_ca(tmp_path):
    from conftest import BUILD
    conf = tmp_path / "p.conf"
    (tmp_path / "users").write_text("")
    conf.write_text("[delivery]\nmode = relay\nrelay = smtp://127.0.0.1:1\n"
                    "relay_tls = verify\nrelay_ca = missing-ca.pem\n")
    cp = subprocess.run([str(BUILD / "portcullisd"), "-t", "-c", str(conf)],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 1, cp
    assert "relay_ca" in cp.stderr and "missing-ca.pem" in cp.stderr, cp.stderr
    conf.write_text("[delivery]\nmode = relay\nrelay = lmtp:unix:/run/x/lmtp\nrelay_tls = may\n")
    cp = subprocess.run([str(BUILD / "portcullisd"), "-t", "-c", str(conf)],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp


def test_reload_says_relay_changes_wait_for_restart(start_daemon, hops):
    hop = hops()
    other = hops()
    d = relay_to(start_daemon, hop)
    d.write_config(delivery={"relay": f"smtp://127.0.0.1:{other.port}"})
    line = d.reload()
    d.wait_log(r"event=reload_partial .*delivery")
    # still the first next hop
    assert attempt(d)[-1][0] == 250
    assert len(hop.messages()) == 1 and other.messages() == []
    assert line
