"""A blocked client on an implicit-TLS listener (issue 11 item 1) reads its
554 — and the 503s and 221 after it — inside TLS, after the handshake, as
swaks, msmtp, openssl s_client and smtplib see it; the handshakes spent on blocked
prefixes are bounded (REJECT_TLS_PER_PREFIX_MIN a minute per prefix); and
the TLS handshake and the PROXY header must finish within
timeout_handshake (item 4)."""

import socket
import ssl
import subprocess
import time

from conftest import T
from guardutil import GREETING_554, proxy_v1
from smtputil import Client, Closed, unverified_context

PER_PREFIX_MIN = 10      # src/smtp/reject.h REJECT_TLS_PER_PREFIX_MIN


def test_554_inside_tls_with_s_client_and_smtplib(start_daemon):
    d = start_daemon()
    d.ctl("block", "127.0.0.1", "--for", "1h", check=True)
    # smtplib's SMTP_SSL: the handshake succeeds and the greeting is the 554
    with Client(d.tls_port, tls=True) as c:
        assert c.greeting.lines == [GREETING_554], c.greeting
        assert c.cmd("EHLO client.test").line.startswith("503 5.5.1"), "no 503 inside TLS"
        assert c.cmd("QUIT").line.startswith("221"), "no 221 inside TLS"
    # openssl s_client: the 554 arrives decrypted after the handshake
    cp = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{d.tls_port}",
                         "-quiet"], input=b"QUIT\r\n",
                        capture_output=True, timeout=30 * T)
    out = cp.stdout.decode("utf-8", "replace")
    assert GREETING_554 in out and "221 " in out, (out, cp.stderr)


def test_554_inside_tls_with_swaks(start_daemon):
    d = start_daemon()
    d.ctl("block", "127.0.0.1", "--for", "1h", check=True)
    cp = subprocess.run(["swaks", "--server", f"127.0.0.1:{d.tls_port}", "--tls-on-connect",
                         "--to", "friend@example.org", "--from", "alice@example.test",
                         "--timeout", "20"], capture_output=True, timeout=60 * T)
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    assert "TLS started" in out, out                 # swaks got its handshake ...
    assert f"<~* {GREETING_554}" in out, out         # ... and read the 554 in it
    assert "wrong version number" not in out, out


def test_554_inside_tls_with_msmtp(start_daemon):
    d = start_daemon()
    d.ctl("block", "127.0.0.1", "--for", "1h", check=True)
    cp = subprocess.run(["msmtp", f"--host=127.0.0.1", f"--port={d.tls_port}", "--tls=on",
                         "--tls-starttls=off", "--tls-certcheck=off", "--auth=off",
                         "--timeout=20", "--from=alice@example.test", "friend@example.org"],
                        input=b"Subject: hi\r\n\r\nhello\r\n", capture_output=True,
                        timeout=60 * T)
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    assert cp.returncode != 0, out
    assert GREETING_554 in out, out                  # msmtp shows the server's own words
    assert "unexpected TLS packet" not in out, out   # what it said before issue 11


def test_tls_handshakes_for_a_blocked_prefix_are_bounded(start_daemon):
    d = start_daemon()
    d.ctl("block", "127.0.0.7", "--for", "1h", check=True)
    served = closed = 0
    for _ in range(PER_PREFIX_MIN + 5):
        try:
            with Client(d.tls_port, tls=True, source="127.0.0.7", timeout=10 * T) as c:
                assert c.greeting.lines == [GREETING_554]
                served += 1
        except (ssl.SSLError, ConnectionError, Closed, OSError):
            closed += 1
    assert served == PER_PREFIX_MIN and closed == 5, (served, closed)
    # every one was a rejection, in the stats and (at unblock) in the log
    assert d.ctl_json("stats")["rejected_blocked"] == PER_PREFIX_MIN + 5
    d.ctl("unblock", "127.0.0.7", check=True)
    logged = sum(int(r["count"]) for r in d.log_lines("reject") if r.get("reason") == "blocked")
    assert logged == PER_PREFIX_MIN + 5
    # another prefix is not held back by this one's minute
    with Client(d.tls_port, tls=True, source="127.0.0.8") as c:
        assert c.greeting.code == 220


def closed_within(sock, seconds):
    """True when the server closes `sock` within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (socket.timeout, TimeoutError):
        return False


def test_tls_handshake_must_finish_within_timeout_handshake(start_daemon):
    d = start_daemon(server={"timeout_handshake": "2s", "timeout_command": "5m"})
    start = d.mark()
    # nothing at all on the implicit-TLS port
    s1 = socket.create_connection(("127.0.0.1", d.tls_port))
    # a ClientHello trickled a byte a second: never done, yet never idle
    s2 = socket.create_connection(("127.0.0.1", d.tls_port))
    # STARTTLS, then silence
    c3 = Client(d.port)
    assert c3.cmd("STARTTLS").code == 220
    t0 = time.monotonic()
    hello = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + b"\x00" * 40
    gone2 = False
    for b in hello[:8]:
        try:
            s2.send(bytes([b]))
        except OSError:
            gone2 = True
            break
        time.sleep(1)
    assert closed_within(s1, 10 * T), "a silent TLS client was held past timeout_handshake"
    assert gone2 or closed_within(s2, 10 * T), "a trickling TLS client was held past timeout_handshake"
    assert closed_within(c3.sock, 10 * T), "a silent STARTTLS handshake was held"
    assert time.monotonic() - t0 < 60, "closed only after far longer than timeout_handshake"
    lines = [r for r in d.log_lines("timeout", start) if r.get("phase") == "tls_handshake"]
    assert len(lines) == 3, d.log(start)
    for s in (s1, s2):
        s.close()
    c3.close()
    # a client that does its handshake is served as before
    with Client(d.tls_port, tls=True) as c:
        assert c.greeting.code == 220


def test_proxy_header_must_finish_within_timeout_handshake(start_daemon):
    d = start_daemon(server={"proxy_protocol": "yes", "timeout_handshake": "2s",
                             "timeout_command": "5m"})
    start = d.mark()
    s = socket.create_connection(("127.0.0.1", d.port))
    header = proxy_v1("192.0.2.9")
    for b in header[:6]:     # "PROXY " a byte every half second, never the rest
        try:
            s.send(bytes([b]))
        except OSError:
            break
        time.sleep(0.5)
    assert closed_within(s, 10 * T), "a slow PROXY header was held past timeout_handshake"
    s.close()
    assert [r for r in d.log_lines("timeout", start) if r.get("phase") == "proxy"], d.log(start)
    with Client(d.port, header=proxy_v1("192.0.2.10")) as c:
        assert c.greeting.code == 220
