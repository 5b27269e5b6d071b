"""PROXY protocol v1/v2: the address in the header is the client for the
guard, the logs and Received:; the proxy peer itself is never counted or
blocked; a missing, malformed or truncated header closes that connection
only, without a greeting."""

import socket

from guardutil import (
    GREETING_554, PLAIN_AUTH_ALL, REPLY_421, T, Conn, V2_SIG, check_status_shape,
    proxy_v1, proxy_v2, read_all_until_close, status, tlv, wait_until,
)

PROXY = {"proxy_protocol": "yes", "proxy_from": "127.0.0.1/32"}


def start(start_daemon, **guard):
    return start_daemon(server=dict(PROXY), tls={"plain_auth_from": PLAIN_AUTH_ALL},
                        guard=guard)


def pconn(d, src, v=1, **kw):
    header = proxy_v1(src) if v == 1 else proxy_v2(src)
    return Conn(d.port, header=header, **kw)


def pgreeting(d, src, v=1, **kw):
    c = pconn(d, src, v, **kw)
    try:
        return c.greeting.line
    finally:
        c.quit()


def fail_auth_via(d, src, n, v=1):
    c = pconn(d, src, v)
    assert c.greeting.code == 220, (src, c.greeting)
    c.ehlo()
    for _ in range(n):
        c.auth_fail()
    return c


def test_v1_and_v2_headers_are_accepted(start_daemon):
    d = start(start_daemon)
    headers = {
        "v1 tcp4": proxy_v1("203.0.113.1"),
        "v1 tcp6": proxy_v1("2001:db8::1", dst="2001:db8::25"),
        "v1 unknown": b"PROXY UNKNOWN\r\n",
        "v1 unknown with addresses": b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        "v2 tcp4": proxy_v2("203.0.113.2"),
        "v2 tcp6": proxy_v2("2001:db8::2"),
        "v2 tcp4 with TLVs": proxy_v2("203.0.113.3",
                                      tlvs=tlv(0x02, b"mx.test.example") + tlv(0x04, b"\0" * 7)
                                      + tlv(0x05, b"unique-id-123")),
        "v2 local": proxy_v2(None, command=0),
    }
    for name, h in headers.items():
        c = Conn(d.port, header=h)
        assert c.greeting.line == "220 mx.test.example ESMTP Portcullis", (name, c.greeting)
        c.ehlo()
        assert c.cmd("NOOP").code == 250, name
        c.quit()
    assert d.running()


def test_header_split_across_packets(start_daemon):
    d = start(start_daemon)
    for h in (proxy_v1("203.0.113.4"), proxy_v2("203.0.113.4")):
        c = Conn(d.port, greet=False)
        for i in range(len(h)):
            c.send(h[i:i + 1])
        c.greeting = c.read_reply()
        assert c.greeting.line.startswith("220 "), c.greeting
        c.quit()


def test_received_header_and_logs_name_proxy_address(start_daemon):
    d = start(start_daemon)
    for src, v in (("203.0.113.77", 1), ("2001:db8::77", 2)):
        c = pconn(d, src, v)
        c.ehlo("web77.customer.test")
        assert c.auth_plain("alice@example.test", "alice-secret").code == 235
        assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
        assert c.cmd("RCPT TO:<friend@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(f"Subject: via {src}\r\n\r\nhello\r\n.\r\n")
        r = c.read_reply()
        assert r.line.startswith("250 2.0.0"), r
        c.quit()
    msgs = wait_until(lambda: (lambda m: m if len(m) >= 2 else None)(d.messages()),
                      timeout=10, what="two messages")
    for src in ("203.0.113.77", "2001:db8::77"):
        msg = next(m for m in msgs if f"Subject: via {src}".encode() in m)
        head = msg.split(b"\n\n", 1)[0].decode("utf-8", "replace")
        unfolded = head.replace("\n\t", " ").replace("\n ", " ")
        received = [l for l in unfolded.split("\n") if l.lower().startswith("received:")]
        assert received, head
        assert src in received[0], received[0]
        assert "web77.customer.test" in received[0]
    log = d.log()
    assert "ip=203.0.113.77" in log
    assert "ip=2001:db8::77" in log
    conns = [f for f in d.log_lines("connect") if f.get("ip") == "203.0.113.77"]
    assert conns and conns[0].get("session"), conns


def test_distinct_clients_are_counted_and_blocked_separately(start_daemon):
    d = start(start_daemon, auth_fail_limit="3", ban_durations="1h")
    # 20 clients on one loopback peer, two failures each: 40 failures in all,
    # none of them over its own limit
    for i in range(1, 21):
        c = fail_auth_via(d, f"203.0.113.{i}", 2, v=1 if i % 2 else 2)
        assert c.cmd("NOOP").code == 250
        c.quit()
    for i in (1, 5, 6, 20):
        s = status(d, f"203.0.113.{i}")
        check_status_shape(s)
        assert s["state"] == "clear", s
        assert s["counters"]["auth_failures"] == 2, s
    peer = status(d, "127.0.0.1")
    assert peer["state"] == "clear"
    assert peer["counters"]["auth_failures"] == 0, peer
    assert d.ctl_json("list")["blocks"] == []

    # the 3rd failure of 203.0.113.5 blocks 203.0.113.5 only
    c = fail_auth_via(d, "203.0.113.5", 1)
    r = c.cmd("NOOP")
    assert r.lines == [REPLY_421], r
    c.close()
    assert pgreeting(d, "203.0.113.5") == GREETING_554
    assert pgreeting(d, "203.0.113.5", v=2) == GREETING_554
    assert pgreeting(d, "203.0.113.6").startswith("220 ")
    assert pgreeting(d, "203.0.113.4", v=2).startswith("220 ")
    s = status(d, "203.0.113.5")
    assert s["state"] == "blocked" and s["block"]["reason"] == "auth_failures"
    assert s["block"]["address"] == "203.0.113.5/32"
    assert status(d, "203.0.113.6")["state"] == "clear"
    assert status(d, "127.0.0.1")["state"] == "clear"
    assert [b["address"] for b in d.ctl_json("list")["blocks"]] == ["203.0.113.5/32"]
    m = d.wait_log(r"event=block\b[^\n]*")
    assert "ip=203.0.113.5/32" in m.group(0), m.group(0)


def test_open_proxied_sessions_of_a_blocked_client_get_421(start_daemon):
    d = start(start_daemon, auth_fail_limit="3", ban_durations="1h")
    victim = pconn(d, "203.0.113.30")
    victim.ehlo()
    bystander = pconn(d, "203.0.113.31", v=2)
    bystander.ehlo()
    assert d.ctl("block", "203.0.113.30", "--for", "1h").returncode == 0
    assert victim.cmd("NOOP").lines == [REPLY_421]
    victim.close()
    assert bystander.cmd("NOOP").code == 250
    bystander.quit()


def test_ipv6_clients_through_proxy_are_counted_per_64(start_daemon):
    d = start(start_daemon, auth_fail_limit="3", ban_durations="1h")
    a = fail_auth_via(d, "2001:db8::1", 2, v=2)
    assert a.cmd("NOOP").code == 250
    a.quit()
    b = fail_auth_via(d, "2001:db8::2", 1, v=1)
    assert b.cmd("NOOP").lines == [REPLY_421]
    b.close()
    assert pgreeting(d, "2001:db8::3", v=2) == GREETING_554
    assert pgreeting(d, "2001:db8:0:1::1", v=2).startswith("220 ")
    s = status(d, "2001:db8::1")
    assert s["prefix"] == "2001:db8::/64"
    assert s["block"]["address"] == "2001:db8::/64"


def test_proxy_peer_is_never_counted_or_blocked(start_daemon):
    d = start(start_daemon, conn_rate_limit="5", conn_rate_window="1m",
              concurrency_limit="3", unauth_limit="3", ban_durations="1h")
    # 30 connections from 30 clients through one peer: no conn_rate block
    for i in range(30):
        assert pgreeting(d, f"198.51.100.{i + 1}", v=1 + i % 2).startswith("220 "), i
    # more simultaneous connections than concurrency_limit, each its own client
    held = [pconn(d, f"198.51.100.{100 + i}") for i in range(8)]
    for c in held:
        assert c.greeting.line.startswith("220 ")
    peer = status(d, "127.0.0.1")
    assert peer["state"] == "clear", peer
    assert peer["counters"]["connections"] == 0, peer
    assert peer["counters"]["concurrent"] == 0, peer
    for c in held:
        c.quit()
    # one client's burst is its own: the 5th connection of 198.51.100.200 gets 554
    got = [pgreeting(d, "198.51.100.200") for _ in range(5)]
    assert all(g.startswith("220 ") for g in got[:4]) and got[4] == GREETING_554, got
    assert status(d, "198.51.100.200")["block"]["reason"] == "conn_rate"
    # unauthenticated MAIL bursts from many clients do not add up on the peer
    for i in range(10):
        c = pconn(d, f"192.0.2.{i + 1}")
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@example.org>").code == 530
        c.quit()
    assert status(d, "127.0.0.1")["state"] == "clear"
    assert status(d, "127.0.0.1")["counters"]["unauth_attempts"] == 0
    assert pgreeting(d, "198.51.100.201").startswith("220 ")
    assert [b["address"] for b in d.ctl_json("list")["blocks"]] == ["198.51.100.200/32"]


def _bad(d, payload, shut=True, source=None):
    """Sends payload (and EOF when shut); returns what came back before the close.
    Fails if the server neither closes nor ... keeps the connection open."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * T,
                                 source_address=(source, 0) if source else None)
    try:
        try:
            if payload:
                s.sendall(payload)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return b"", True
        return read_all_until_close(s, 15)
    finally:
        s.close()


def test_missing_malformed_truncated_headers_close_without_greeting(start_daemon):
    d = start(start_daemon)
    v2 = proxy_v2("203.0.113.9")
    cases = {
        "no header, SMTP at once": b"EHLO client.test\r\n",
        "no header, HTTP": b"GET / HTTP/1.0\r\n\r\n",
        "v1 bad address": b"PROXY TCP4 999.0.113.5 192.0.2.25 40000 587\r\n",
        "v1 bad protocol": b"PROXY FOO 203.0.113.5 192.0.2.25 40000 587\r\n",
        "v1 missing fields": b"PROXY TCP4 203.0.113.5\r\n",
        "v1 family mismatch": b"PROXY TCP4 2001:db8::1 192.0.2.25 40000 587\r\n",
        "v1 bad port": b"PROXY TCP4 203.0.113.5 192.0.2.25 99999 587\r\n",
        "v1 lowercase": b"proxy TCP4 203.0.113.5 192.0.2.25 40000 587\r\n",
        "v1 too long": b"PROXY TCP4 " + b"1" * 300 + b"\r\n",
        "v1 LF only": b"PROXY TCP4 203.0.113.5 192.0.2.25 40000 587\n",
        "v1 truncated": b"PROXY TCP4 203.0.113.5 192.0",
        "v2 truncated signature": V2_SIG[:7],
        "v2 truncated header": v2[:14],
        "v2 truncated addresses": v2[:20],
        "v2 bad version": V2_SIG + b"\x31\x11" + v2[14:],
        "v2 bad command": V2_SIG + b"\x2f\x11" + v2[14:],
        "v2 length too short for family": V2_SIG + b"\x21\x11\x00\x04" + b"\xcb\x00\x71\x09",
        "v2 bad family": V2_SIG + b"\x21\x71" + v2[14:],
        "v2 huge length": V2_SIG + b"\x21\x11\xff\xff" + v2[16:],
        "random bytes": bytes(range(256)) * 4,
        "nothing at all": b"",
    }
    for name, payload in cases.items():
        data, closed = _bad(d, payload)
        assert closed, f"{name}: connection left open"
        assert data == b"", f"{name}: got {data!r} instead of a silent close"
        assert d.running(), f"daemon died after {name}"
        # the daemon keeps serving proper connections
        assert pgreeting(d, "203.0.113.8").startswith("220 "), name
    # the peer is not punished for its bad headers
    assert status(d, "127.0.0.1")["state"] == "clear"
    assert d.ctl_json("list")["blocks"] == []


def test_peer_not_in_proxy_from_is_closed_without_greeting(start_daemon):
    d = start(start_daemon)
    data, closed = _bad(d, proxy_v1("203.0.113.10"), shut=False, source="127.0.0.2")
    assert closed, "connection from outside proxy_from left open"
    assert data == b"", data
    data, closed = _bad(d, proxy_v2("203.0.113.10"), shut=False, source="127.0.0.2")
    assert closed and data == b"", data
    assert pgreeting(d, "203.0.113.10").startswith("220 ")


def test_silent_client_without_header_is_closed_without_greeting(start_daemon):
    """A peer that connects and sends nothing never gets a greeting (the
    server waits for the header) and is hung up on after a bounded time."""
    d = start(start_daemon)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * T)
    try:
        data, closed = read_all_until_close(s, 40)
    finally:
        s.close()
    assert data == b"", data
    assert closed, "a silent connection was kept open for 40 s"
    assert pgreeting(d, "203.0.113.8").startswith("220 ")
