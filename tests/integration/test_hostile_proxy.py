"""Truncated and oversized PROXY protocol headers (issue 5 item 3), with
`proxy_protocol = yes`: each such connection is closed without a greeting
(SPEC §2 proxy_from), while a well-behaved client behind the "proxy" keeps
being served within GOOD_BOUND and the daemon's VmRSS stays bounded.
"""

import ipaddress
import socket
import struct
import time

from conftest import T
from hostileutil import HOSTILE_GUARD, Client, Watch

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
GOOD_SRC = "203.0.113.50"


def v1(src, dst="192.0.2.25", sport=40000, dport=587):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst="192.0.2.25", sport=40000, dport=587, extra=b""):
    body = (ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
            + struct.pack("!HH", sport, dport) + extra)
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def proxied(start_daemon):
    guard = dict(HOSTILE_GUARD)
    return start_daemon(server={"proxy_protocol": "yes", "proxy_from": "127.0.0.1/32"},
                        tls={"plain_auth_from": "127.0.0.0/8 203.0.113.0/24"},
                        guard=guard)


def closed_silently(sock, timeout):
    """Read until the server closes; returns the bytes received."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"not closed within {timeout}s; got {data[:200]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def send_quietly(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass          # the server may hang up while we still write: fine


BAD_HEADERS = {
    # truncated (then the client half-closes: the server sees EOF)
    "v1 truncated": v1("203.0.113.9")[:20],
    "v1 no CRLF": v1("203.0.113.9")[:-2],
    "v2 signature only": V2_SIG,
    "v2 truncated address": v2("203.0.113.9")[:22],
    "v2 truncated ipv6": v2("2001:db8::9", "2001:db8::25")[:40],
    # oversized
    "v1 107+ octets": b"PROXY TCP4 " + b"1" * 300 + b"\r\n",
    "v1 1 MiB": b"PROXY " + b"9" * (1 << 20),
    "v2 length 65535": V2_SIG + b"\x21\x11\xff\xff" + b"\x00" * 65535,
    "v2 length 2000": V2_SIG + b"\x21\x11\x07\xd0" + b"\x00" * 2000,
    "v2 TLV overflow": v2("203.0.113.9", extra=b"\x02\xff\xff" + b"x" * 3000),
    # neither
    "SMTP instead": b"EHLO no-proxy.example\r\n",
    "TLS instead": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200,
}


def test_bad_proxy_headers_closed_without_greeting(start_daemon):
    d = proxied(start_daemon)
    header = v1(GOOD_SRC)
    # the well-behaved client works through a PROXY header
    with Client(d.port, header=header) as c:
        assert c.greeting[0] == 220, c.greeting
    outcomes = {}
    rounds = 0
    with Watch(d, "bad PROXY headers", rss_bound_mb=32, header=header) as w:
        # headers that stop short and stay open: closed at the server's
        # PROXY deadline, without a byte; held concurrently with the rest
        stalled = []
        for name in ("v1 truncated", "v2 truncated address"):
            for _ in range(10):
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * T)
                s.sendall(BAD_HEADERS[name])
                stalled.append((name, s))
        while w.more(3) and rounds < 500:
            rounds += 1
            for name, h in BAD_HEADERS.items():
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * T)
                try:
                    send_quietly(s, h)
                    try:
                        s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    data = closed_silently(s, 15 * T)
                    outcomes.setdefault(name, set()).add(data[:60])
                finally:
                    s.close()
            time.sleep(0.02)
        t0 = time.monotonic()
        for name, s in stalled:
            data = closed_silently(s, 30 * T)
            outcomes.setdefault("stalled " + name, set()).add(data[:60])
            s.close()
        stall_close = time.monotonic() - t0
    w.check()
    print(f"[hostile] bad PROXY headers: {rounds} rounds of {len(BAD_HEADERS)}; "
          f"stalled ones closed {stall_close:.1f}s after the rounds")
    for name, seen in outcomes.items():
        assert seen == {b""}, f"{name}: the server sent {seen} instead of closing silently"
    assert len(outcomes) == len(BAD_HEADERS) + 2
    assert d.running()
