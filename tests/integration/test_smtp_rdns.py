"""[server] reverse_dns: the client's name, looked up asynchronously (PTR,
then A/AAAA to confirm it, Postfix style), in the Received: header and an
event=rdns log line. Every query goes to a DNSResponder on loopback
(tests/integration/dnsutil.py) named by [server] resolver."""

import re
import signal
import smtplib
import socket
import struct
import time

import pytest

from conftest import (CLIENT_NAME, T, Delivered, free_ports, parse_logfmt, queue_id,
                      wait_until)
from dnsutil import DNSResponder, reverse_name

MESSAGE = b"Subject: rdns\r\n\r\nhello\r\n"
PTR_127 = reverse_name("127.0.0.1")


@pytest.fixture
def dns():
    with DNSResponder() as r:
        yield r


@pytest.fixture
def dead_dns():
    """A resolver that reads every query and never answers."""
    with DNSResponder(silent=True) as r:
        yield r


def start(start_daemon, resolver, reverse_dns="yes", **server):
    return start_daemon(server={"reverse_dns": reverse_dns, "resolver": resolver.address,
                                **server})


def rdns_line(d, start):
    """The first event=rdns line after `start`, as a dict."""
    m = d.wait_log(r"^.*\bevent=rdns\b.*$", start=start, timeout=15)
    return parse_logfmt(m.group(0))


def deliver(s):
    code, resp = s.mail("alice@example.test")
    assert code == 250, (code, resp)
    code, resp = s.rcpt("bob@example.test")
    assert code == 250, (code, resp)
    code, resp = s.data(MESSAGE)
    assert code == 250, (code, resp)
    return queue_id(resp)


def received_for(d, qid):
    for data in d.messages():
        m = Delivered(data)
        if re.search(r"\bid " + re.escape(qid) + r"\b", m.received):
            return m
    pytest.fail(f"no delivered message with id {qid}")


def session_after_lookup(d):
    """An authenticated session whose lookup has finished; (smtp, rdns line)."""
    mark = d.mark()
    s = d.authed()
    return s, rdns_line(d, mark)


def deliver_after_lookup(d):
    """One message sent once the session's lookup has finished; (the
    delivered message, the rdns line)."""
    s, line = session_after_lookup(d)
    try:
        qid = deliver(s)
    finally:
        s.quit()
    return received_for(d, qid), line


# ---------------------------------------------------------------------------




# libevent 2.1's evdns keeps a PTR target in a HOST_NAME_MAX (64) buffer:
# 63 characters is the longest name it hands over (docs/CONFIGURATION.md).
NAME_63 = "m" * 48 + ".client.test.ex"


@pytest.mark.parametrize("name", ["mail.client.test", NAME_63], ids=["short", "63-chars"])
def test_confirmed_name_in_received_and_log(start_daemon, dns, name):
    dns.add(PTR_127, "PTR", name + ".")
    dns.add(name, "A", "192.0.2.9", "127.0.0.1")
    d = start(start_daemon, dns)
    m, line = deliver_after_lookup(d)
    assert f"from {CLIENT_NAME} ({name} [127.0.0.1])" in m.received, m.received
    assert line["name"] == name, line
    assert line["ip"] == "127.0.0.1" and line["session"], line
    assert "why" not in line, line
    assert line["level"] == "info", line
    # both steps went to our responder: PTR, then A of the name it gave
    assert dns.names_asked("PTR") == [PTR_127.lower()]
    assert dns.names_asked("A") == [name]


def test_forward_mismatch_is_unknown(start_daemon, dns):
    dns.add(PTR_127, "PTR", "forged.client.test.")
    dns.add("forged.client.test", "A", "127.0.0.2")
    d = start(start_daemon, dns)
    m, line = deliver_after_lookup(d)
    assert f"from {CLIENT_NAME} (unknown [127.0.0.1])" in m.received, m.received
    assert "forged.client.test" not in m.data.decode("utf-8", "replace")
    assert line["name"] == "unknown" and line["why"] == "mismatch", line
    assert line["ptr"] == "forged.client.test", line


def test_forward_name_missing_is_unknown(start_daemon, dns):
    dns.add(PTR_127, "PTR", "gone.client.test.")      # no A for it: NXDOMAIN
    d = start(start_daemon, dns)
    m, line = deliver_after_lookup(d)
    assert "(unknown [127.0.0.1])" in m.received
    assert line["name"] == "unknown" and line["why"] == "mismatch", line


def test_nxdomain_is_unknown(start_daemon, dns):
    d = start(start_daemon, dns)                       # no records at all
    m, line = deliver_after_lookup(d)
    assert f"from {CLIENT_NAME} (unknown [127.0.0.1])" in m.received
    assert line["name"] == "unknown" and line["why"] == "nxdomain", line
    assert dns.count("PTR") >= 1
    assert dns.count("A") == 0


def test_dead_resolver_delays_nothing(start_daemon, dead_dns):
    d = start(start_daemon, dead_dns)
    mark = d.mark()
    t0 = time.monotonic()
    r = d.raw()
    try:
        code, _ = r.read_reply()
        greeting = time.monotonic() - t0
        assert code == 220
        assert greeting < 1.0 * T, f"greeting took {greeting:.2f}s"
        assert r.cmd(f"EHLO {CLIENT_NAME}")[0] == 250
        assert r.auth_plain("alice@example.test", d.users["alice@example.test"])[0] == 235
        assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        t1 = time.monotonic()
        code, text = r.cmd(MESSAGE + b".")
        after_data = time.monotonic() - t1
        assert code == 250, text
        assert after_data < 1.0 * T, f"250 after DATA took {after_data:.2f}s"
        qid = queue_id(text[0])
        m = received_for(d, qid)
        assert f"from {CLIENT_NAME} (unknown [127.0.0.1])" in m.received, m.received
        assert dead_dns.count("PTR") >= 1
        # the lookup gives up by itself (RDNS_DEADLINE_MS, 5 s) and says so
        line = rdns_line(d, mark)
        assert line["name"] == "unknown" and line["why"] == "timeout", line
        assert time.monotonic() - t0 < 8 * T
        assert r.cmd("NOOP")[0] == 250
        assert r.cmd("QUIT")[0] == 221
    finally:
        r.close()


@pytest.mark.parametrize("labels", [
    [b"evil host", b"client", b"test"],
    [b"evil", b"test\r\nX-Injected: yes"],
    [b"evil\x01\x7f", b"test"],
    [b"a.b(c)", b"test"],
    [b"127", b"0", b"0", b"1"],                        # a PTR posing as an address
], ids=["space", "crlf", "control", "punctuation", "numeric"])
def test_garbage_ptr_never_reaches_the_header(start_daemon, dns, labels):
    dns.add_raw_ptr(PTR_127, labels)
    # Were the name ever looked up forward, it would be "confirmed".
    garbage = b".".join(labels).decode("latin-1")
    try:
        dns.add(garbage, "A", "127.0.0.1")
    except Exception:
        pass                                           # not even a name dnspython can build
    d = start(start_daemon, dns)
    m, line = deliver_after_lookup(d)
    assert f"from {CLIENT_NAME} (unknown [127.0.0.1])" in m.received, m.received
    head = m.data.split(b"\n\n", 1)[0]
    for bad in (b"evil", b"a.b(c)", b"unknown [127.0.0.1]) ("):
        assert bad not in head, f"{bad!r} in the headers: {head!r}"
    assert head.count(b"127.0.0.1") == 1, head
    assert b"X-Injected" not in m.data
    assert line["name"] == "unknown" and line["why"] in ("bad_name", "error"), line
    assert dns.count("A") == 0, dns.queries


def test_reverse_dns_off_asks_nothing(start_daemon, dns):
    dns.add(PTR_127, "PTR", "mail.client.test.")
    dns.add("mail.client.test", "A", "127.0.0.1")
    d = start(start_daemon, dns, reverse_dns="no")
    mark = d.mark()
    s = d.authed()
    try:
        qid = deliver(s)
    finally:
        s.quit()
    m = received_for(d, qid)
    assert f"from {CLIENT_NAME} ([127.0.0.1])" in m.received, m.received
    time.sleep(0.5)
    assert dns.count() == 0, dns.queries
    assert d.log_lines("rdns", mark) == []
    assert "not_implemented" not in d.log()


def test_disconnect_while_pending_is_safe(start_daemon, dead_dns):
    d = start(start_daemon, dead_dns)
    for i in range(12):
        r = d.raw()
        try:
            assert r.read_reply()[0] == 220
            if i % 3 == 0:
                r.cmd("QUIT")
            elif i % 3 == 1:                           # a RST instead of a FIN
                r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            r.close()
    wait_until(lambda: dead_dns.count("PTR") >= 12, what="12 PTR queries")
    # the daemon lives on and serves the next client normally
    s = d.authed()
    try:
        qid = deliver(s)
    finally:
        s.quit()
    assert "(unknown [127.0.0.1])" in received_for(d, qid).received
    assert d.running()
    # and it stops cleanly with a lookup still in flight (ASan: no leak)
    left = d.raw()
    try:
        assert left.read_reply()[0] == 220
        assert d.stop() == 0
    finally:
        left.close()


def test_answer_after_disconnect_is_ignored(start_daemon):
    with DNSResponder(delay=0.3) as slow:
        slow.add(PTR_127, "PTR", "mail.client.test.")
        slow.add("mail.client.test", "A", "127.0.0.1")
        d = start(start_daemon, slow)
        mark = d.mark()
        for _ in range(3):
            r = d.raw()
            try:
                assert r.read_reply()[0] == 220
            finally:
                r.close()
        wait_until(lambda: slow.count("PTR") >= 3, what="3 PTR queries")
        time.sleep(1.0)                                # the answers come in for nobody
        assert d.running()
        assert d.log_lines("rdns", mark) == []         # no session left to log for
        s, line = session_after_lookup(d)
        s.quit()
        assert line["name"] == "mail.client.test", line


def test_ipv6_client_confirmed_with_aaaa(start_daemon, dns):
    v4, port = free_ports(2)
    dns.add(reverse_name("::1"), "PTR", "v6.client.test.")
    dns.add("v6.client.test", "AAAA", "::1")
    dns.add("v6.client.test", "A", "127.0.0.1")        # must not be what confirms it
    d = start(start_daemon, dns, listen=f"127.0.0.1:{v4}/starttls [::1]:{port}/plain")
    mark = d.mark()
    s = smtplib.SMTP("::1", port, local_hostname=CLIENT_NAME, timeout=10 * T)
    try:
        s.ehlo()
        code, _ = s.auth("PLAIN", lambda c=None: "\0alice@example.test\0" + d.users["alice@example.test"])
        assert code == 235
        line = rdns_line(d, mark)
        qid = deliver(s)
    finally:
        s.quit()
    assert "(v6.client.test [::1])" in received_for(d, qid).received
    assert line["name"] == "v6.client.test", line
    assert dns.names_asked("AAAA") == ["v6.client.test"]
    assert dns.count("A") == 0


def test_reload_turns_it_on_and_resolver_needs_restart(start_daemon, dns):
    dns.add(PTR_127, "PTR", "mail.client.test.")
    dns.add("mail.client.test", "A", "127.0.0.1")
    d = start(start_daemon, dns, reverse_dns="no")
    d.write_config(server={"reverse_dns": "yes"})
    d.reload()
    m, line = deliver_after_lookup(d)
    assert "(mail.client.test [127.0.0.1])" in m.received
    mark = d.mark()
    d.write_config(server={"resolver": "127.0.0.1:9"})
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"event=reload_partial hint=\"resolver changes at restart\"", start=mark)


def test_proxy_protocol_looks_up_the_real_client(start_daemon, dns):
    dns.add(reverse_name("192.0.2.7"), "PTR", "real.client.test.")
    dns.add("real.client.test", "A", "192.0.2.7")
    d = start(start_daemon, dns, proxy_protocol="yes", proxy_from="127.0.0.1/32")
    mark = d.mark()
    r = d.raw()
    try:
        r.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 587\r\n")
        assert r.read_reply()[0] == 220
        line = rdns_line(d, mark)
        assert line["ip"] == "192.0.2.7" and line["name"] == "real.client.test", line
        assert dns.names_asked("PTR") == [reverse_name("192.0.2.7")]
        # a health check of the balancer (PROXY v1 UNKNOWN) names no client
        h = d.raw()
        try:
            h.send(b"PROXY UNKNOWN\r\n")
            assert h.read_reply()[0] == 220
            assert h.cmd("QUIT")[0] == 221
        finally:
            h.close()
        time.sleep(0.3)
        assert dns.count("PTR") == 1, dns.queries
        assert r.cmd("QUIT")[0] == 221
    finally:
        r.close()
