"""Hostile TLS traffic (issue 5 item 3): a TLS ClientHello on the plain /
STARTTLS port, plain text on the implicit-TLS port, a flood of STARTTLS
attempts, and TLS renegotiation attempts (refused server-side).

A well-behaved client keeps getting served within GOOD_BOUND throughout and
the daemon's VmRSS stays under the bound stated per test.
"""

import socket
import ssl
import subprocess
import threading
import time

from conftest import T
from hostileutil import (
    HOSTILE_GUARD, PASSWORD, RCPT, USER, Client, Closed, Watch, client_hello_bytes,
    plain_b64, stuffed, body_for, submit, unverified_context,
)


def hostile(start_daemon):
    return start_daemon(guard=dict(HOSTILE_GUARD))


def replies_until_noop(c, timeout):
    """Replies until the 250 of a NOOP (or the server closes)."""
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            code, lines = c.read_reply(timeout=max(0.1, deadline - time.monotonic()))
            out.append((code, lines))
            if code == 250:
                return out, False
    except Closed:
        return out, True
    raise TimeoutError(f"no NOOP reply and no close within {timeout}s: {out[-3:]}")


def test_client_hello_on_plain_port(start_daemon):
    """A ClientHello where SMTP is expected: 5xx replies (or a close), never
    a crash; the session can even go on; a TLS client there fails fast."""
    d = hostile(start_daemon)
    hello = client_hello_bytes()
    rounds = 0
    with Watch(d, "ClientHello on the plain port", rss_bound_mb=32) as w:
        while w.more(3) and rounds < 2000:
            rounds += 1
            # after reading the greeting
            with Client(d.port) as c:
                c.send(hello + b"\r\nNOOP\r\n")
                replies, closed = replies_until_noop(c, 10 * T)
                bad = [r for r in replies if not (500 <= r[0] <= 504 or r[0] in (250, 421))]
                assert not bad, bad
                if closed:
                    assert replies and replies[-1][0] == 421, replies[-3:]
            # before the greeting (a client that assumed implicit TLS)
            with Client(d.port, greet=False, header=hello) as c:
                code, lines = c.read_reply()
                assert code == 220, lines
                c.send(b"\r\nNOOP\r\n")
                replies, closed = replies_until_noop(c, 10 * T)
                assert all(500 <= r[0] <= 504 or r[0] in (250, 421) for r in replies), replies
            # a real TLS client on the plain port: an error, quickly
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * T)
            t0 = time.monotonic()
            try:
                unverified_context().wrap_socket(s)
                raise AssertionError("TLS handshake succeeded on the plain port")
            except (ssl.SSLError, ConnectionError, OSError) as e:
                assert not isinstance(e, TimeoutError), f"handshake hung: {e!r}"
            finally:
                s.close()
            assert time.monotonic() - t0 < 5 * T
    w.check()
    print(f"[hostile] ClientHello on the plain port: {rounds} rounds of 3 connections")


def test_plain_text_on_tls_port(start_daemon):
    """Plain text on the implicit-TLS port: handshake failure and close; no
    SMTP greeting in the clear; nothing but (at most) a TLS alert."""
    d = hostile(start_daemon)
    junk = [b"EHLO plain.example\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            b"QUIT\r\n" * 2000, b"\x16\x03\x01\x00\x05hello-not-tls" + b"\0" * 100,
            b"\x16\x03\x03\xff\xff" + b"A" * 4000]
    rounds = 0
    with Watch(d, "plain text on the TLS port", rss_bound_mb=32) as w:
        while w.more(3) and rounds < 2000:
            rounds += 1
            for j in junk:
                with Client(d.tls_port, greet=False) as c:
                    try:
                        c.send(j)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    data = c.read_until_closed(15 * T)
                    assert b"220" not in data, data[:200]
                    assert data == b"" or data[:1] == b"\x15", \
                        f"non-alert bytes from the TLS port: {data[:200]!r}"
    w.check()
    print(f"[hostile] plain text on the TLS port: {rounds * len(junk)} connections")
    # and the TLS port still serves real TLS clients
    with Client(d.tls_port, tls=True) as c:
        assert c.greeting[0] == 220, c.greeting
        code, lines = submit(c, "after-plain-on-tls")
        assert code == 250, lines


def _starttls_worker(d, w, results, idx):
    n = 0
    try:
        while w.more(4) and n < 100:
            n += 1
            # A: STARTTLS, then STARTTLS again inside TLS: 503 each time; the
            # session still works
            with Client(d.port) as c:
                assert c.cmd("EHLO flood.example")[0] == 250
                c.starttls()
                code, lines = c.cmd("EHLO flood.example")
                assert code == 250 and not any("STARTTLS" in l for l in lines), lines
                for _ in range(3):
                    code, lines = c.cmd("STARTTLS")
                    assert code == 503, f"STARTTLS inside TLS got {lines}"
                token = f"starttls-{idx}-{n}"
                assert c.cmd("AUTH PLAIN " + plain_b64(USER, PASSWORD))[0] == 235
                assert c.cmd(f"MAIL FROM:<{USER}>")[0] == 250
                assert c.cmd(f"RCPT TO:<{RCPT}>")[0] == 250
                assert c.cmd("DATA")[0] == 354
                c.send(stuffed(body_for(token)) + b".\r\n")
                code, lines = c.read_reply()
                assert code == 250, lines
                results.setdefault("tokens", []).append(token)
            # B: STARTTLS, then vanish mid-handshake
            with Client(d.port) as c:
                assert c.cmd("EHLO flood.example")[0] == 250
                assert c.cmd("STARTTLS")[0] == 220
                c.send(client_hello_bytes()[:40])
            # C: STARTTLS, then plain text instead of a handshake: closed
            with Client(d.port) as c:
                assert c.cmd("EHLO flood.example")[0] == 250
                assert c.cmd("STARTTLS")[0] == 220
                c.send(b"EHLO still-plain.example\r\n")
                data = c.read_until_closed(15 * T)
                assert b"250" not in data, data[:200]
            # D: a command pipelined after STARTTLS is dropped, not answered
            # in the clear (CVE-2011-0411); the handshake then works
            with Client(d.port) as c:
                assert c.cmd("EHLO flood.example")[0] == 250
                c.send(b"STARTTLS\r\nEHLO injected.example\r\n")
                code, lines = c.read_reply()
                assert code == 220, lines
                assert c.buf == b"", f"bytes after 220: {c.buf!r}"
                c.sock.settimeout(0.3)
                try:
                    early = c.sock.recv(100, socket.MSG_PEEK)
                except (TimeoutError, socket.timeout):
                    early = b""
                assert early == b"", f"the injected EHLO was answered: {early!r}"
                c.sock = unverified_context().wrap_socket(c.sock)
                code, lines = c.cmd("NOOP")
                assert code == 250, lines
            # E: STARTTLS on the implicit-TLS port
            with Client(d.tls_port, tls=True) as c:
                assert c.cmd("EHLO flood.example")[0] == 250
                assert c.cmd("STARTTLS")[0] == 503
    except Exception as e:
        results.setdefault("errors", []).append(f"worker {idx} round {n}: {type(e).__name__}: {e}")
    results.setdefault("rounds", []).append(n)


def test_starttls_flood(start_daemon):
    d = hostile(start_daemon)
    results = {}
    with Watch(d, "STARTTLS flood", rss_bound_mb=32) as w:
        threads = [threading.Thread(target=_starttls_worker, args=(d, w, results, i))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120 * T)
    w.check()
    print(f"[hostile] STARTTLS flood: rounds per worker {results.get('rounds')}")
    assert not results.get("errors"), results["errors"][:5]
    stored = b"".join(d.messages())
    for token in results.get("tokens", []):
        assert f"end {token}\n".encode() in stored, token


class SClient:
    """openssl s_client -msg, driven line by line; output collected."""

    def __init__(self, args):
        self.p = subprocess.Popen(["openssl", "s_client", "-connect"] + args +
                                  ["-tls1_2", "-crlf", "-msg"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.chunks = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            b = self.p.stdout.read1(65536)
            if not b:
                return
            self.chunks.append(b)

    @property
    def out(self):
        return b"".join(self.chunks).decode("utf-8", "replace")

    def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.out) or self.p.poll() is not None:
                return pred(self.out)
            time.sleep(0.05)
        return False

    def line(self, text):
        # one write per line: s_client only sees 'R' as a command when it
        # is alone in one read
        try:
            self.p.stdin.write(text.encode() + b"\n")
            self.p.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def finish(self, timeout):
        try:
            self.p.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait(timeout=10)
            self.reader.join(timeout=10)
        return self.out


def renegotiate_once(args, timeout):
    sc = SClient(args)
    try:
        assert sc.wait(lambda o: "Verify return code" in o, timeout), sc.out[-2000:]
        n250 = sc.out.count("250 ")
        sc.line("EHLO reneg.example")
        assert sc.wait(lambda o: o.count("250 ") > n250, timeout), sc.out[-2000:]
        time.sleep(0.2)
        sc.line("R")
        sc.wait(lambda o: "RENEGOTIATING" in o and ("Alert" in o.split("RENEGOTIATING")[-1]
                                                    or "ServerHello" in o.split("RENEGOTIATING")[-1]),
                timeout)
        time.sleep(0.5)
        sc.line("NOOP")
        time.sleep(0.3)
    finally:
        out = sc.finish(timeout)
    return out


def test_renegotiation_refused(start_daemon):
    """TLS 1.2 renegotiation ('R' in openssl s_client; Python's ssl cannot
    renegotiate) on both TLS paths: there is never a second ServerHello,
    the daemon refuses (no_renegotiation) and stays healthy."""
    d = hostile(start_daemon)
    outs = []

    def one(i):
        if i % 2:
            args = [f"127.0.0.1:{d.port}", "-starttls", "smtp"]
        else:
            args = [f"127.0.0.1:{d.tls_port}"]
        try:
            outs.append(renegotiate_once(args, 15 * T))
        except Exception as e:     # any failure must reach the checks below
            outs.append(f"s_client session failed before R: {e!r}")

    with Watch(d, "renegotiation attempts", rss_bound_mb=32) as w:
        rounds = 0
        while w.more(3) and rounds < 10:
            threads = [threading.Thread(target=one, args=(rounds * 6 + i,)) for i in range(6)]
            rounds += 1
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60 * T)
    w.check()
    assert len(outs) == rounds * 6 and rounds >= 1, (len(outs), rounds)
    for out in outs:
        hellos = out.count("ServerHello\n") + out.count("ServerHello\r\n")
        assert "RENEGOTIATING" in out, out[-2000:]
        assert hellos == 1, f"{hellos} ServerHellos: renegotiation happened?\n{out[-3000:]}"
        assert "no_renegotiation" in out or "no renegotiation" in out, out[-3000:]
    print(f"[hostile] renegotiation: {len(outs)} s_client sessions, all refused")
