"""The raw SMTP client and socket readers every integration test shares.

Client: one byte-level SMTP connection (exact control over what is written
and when; every reply seen exactly as sent; a close told apart from a
reply). Its replies are Reply objects. Also free loopback ports, the TLS
context that does not check the certificate, AUTH PLAIN tokens and the
greeting helpers.

Only the standard library (no pytest), so bench/ scripts can import it too.

Timeouts: Client and its methods take seconds as they are (the default,
10 s, is already multiplied by T); read_all_until_close() and wait_closed()
multiply theirs by T, as wait_until() and Daemon.wait_log() do.
"""

import base64
import functools
import itertools
import os
import re
import socket
import ssl
import time

SANITIZED = os.environ.get("PORTCULLIS_SANITIZED") == "1"
#: multiply every timeout by this (sanitizer builds are slow)
T = 3 if SANITIZED else 1

ALICE = ("alice@example.test", "alice-secret")
WRONG_PASSWORD = "Wr0ng-Passw0rd-xyzzy"
_guesses = itertools.count(1)

# What the daemon says to a blocked client, and the shapes of `portcullisctl
# --json` (SPEC §3, §5): one copy for the guard and the cluster tests.
REJECT_TEXT = "ESMTP not accepting connections"
BLOCK_KEYS = {
    "address", "state", "reason", "started_at", "expires_at", "lifted_at",
    "lifted_by", "lift_reason", "first_event_at", "last_event_at", "events", "node",
}
STATUS_KEYS = {"address", "prefix", "state", "block", "last_block", "counters", "offenses", "repeats"}
COUNTER_KEYS = {"auth_failures", "unauth_attempts", "connections", "concurrent"}

_REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*)$")


def free_ports(n, host="127.0.0.1"):
    """n distinct free TCP ports on `host` (bound together, then freed)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]


def unverified_context():
    """A TLS client context that does not check the server's certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def plain_b64(user, password, authzid=""):
    raw = f"{authzid}\0{user}\0{password}".encode()
    return base64.b64encode(raw).decode()


class Closed(ConnectionError):
    """The server closed the connection (EOF) before a complete reply.
    (A reset is not turned into this: it stays a ConnectionResetError.)"""


class Reply(tuple):
    """One complete (possibly multi-line) SMTP reply.

    It is the pair (code, texts): texts are the lines without their
    "250-"/"250 " prefix, so `code, texts = reply` and
    `reply == (250, ["2.0.0 Ok"])` work. Also:
      .code   the reply code (int)
      .lines  every line as sent, CRLF stripped ("250-mx.test.example", ...)
      .line   the last (or only) line as sent
    """

    def __new__(cls, lines):
        self = super().__new__(cls, (int(lines[-1][:3]), [ln[4:] for ln in lines]))
        self.lines = list(lines)
        return self

    @property
    def code(self):
        return self[0]

    @property
    def texts(self):
        return self[1]

    @property
    def line(self):
        return self.lines[-1]

    def __repr__(self):
        return f"Reply({self.lines!r})"


def _drain(sock, seconds):
    """Reads until EOF or reset; returns (data, closed). closed is False when
    `seconds` passed with the connection still open. A TLS error counts as
    the close it ends in."""
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def read_all_until_close(sock, timeout=10):
    """Reads until EOF/reset; returns (data, closed). closed is False when
    the timeout (times T) passed with the connection still open."""
    return _drain(sock, timeout * T)


class Client:
    """One raw SMTP connection.

    timeout: seconds for each read (default 10 s times T).
    tls:     implicit TLS (certificate not checked).
    source:  local address to bind (e.g. "127.0.0.2" to be another client).
    header:  bytes sent before reading anything (a PROXY header).
    greet:   read the greeting at once (into self.greeting).
    """

    def __init__(self, port, host="127.0.0.1", timeout=None, tls=False, *,
                 source=None, header=None, greet=True):
        self.timeout = timeout or 10 * T
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=self.timeout,
                                             source_address=src)
        if tls:
            self.sock = unverified_context().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = None
        if header is not None:
            self.sock.sendall(header)
        if greet:
            self.greeting = self.read_reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reading -------------------------------------------------------

    def read_line(self, timeout=None):
        """One line (bytes, CRLF stripped). Raises TimeoutError when none is
        complete within `timeout` (default self.timeout), Closed on EOF."""
        timeout = timeout or self.timeout
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete line within {timeout}s; "
                                   f"buffered: {self.buf[:300]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(f"server closed the connection; buffered: {self.buf[:300]!r}")
            self.buf += chunk
            if len(self.buf) > 1 << 20 and b"\r\n" not in self.buf:
                raise AssertionError("reply line longer than 1 MB")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self, timeout=None):
        """One complete (multi-line) reply as a Reply."""
        lines = []
        while True:
            line = self.read_line(timeout)
            m = _REPLY_LINE.match(line)
            assert m, f"malformed reply line {line[:300]!r}"
            lines.append(line.decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(lines)

    def nothing_for(self, seconds):
        """True if no byte arrives within `seconds` (and the peer stays open)."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return True
        except ssl.SSLWantReadError:
            return True
        self.buf += chunk
        return False

    def read_until_closed(self, timeout=None):
        """Everything (buffered bytes first) until the server closes; raises
        TimeoutError if it does not within `timeout` (default self.timeout)."""
        timeout = timeout or self.timeout
        data, closed = _drain(self.sock, timeout)
        data, self.buf = self.buf + data, b""
        if not closed:
            raise TimeoutError(f"server did not close within {timeout}s; got {data[:300]!r}")
        return data

    def wait_closed(self, timeout=10):
        """True once the server has closed (EOF or reset) within timeout
        (times T); False if it is still open then. Data is kept in buf."""
        data, closed = _drain(self.sock, timeout * T)
        self.buf += data
        return closed

    # -- writing -------------------------------------------------------

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line, timeout=None):
        """Sends one command line (CRLF added) and reads its reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def ehlo(self, name="client.test"):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, r
        return r

    def auth_plain(self, user, password):
        return self.cmd("AUTH PLAIN " + plain_b64(user, password))

    def auth_fail(self, user=ALICE[0]):
        """A wrong password for `user`, a new one each time (a guesser: the
        same wrong password again is a repeat, which counts once); asserts
        the 535 5.7.8."""
        r = self.auth_plain(user, f"{WRONG_PASSWORD}-{next(_guesses)}")
        assert r.line.startswith("535 5.7.8"), f"a wrong password got {r!r}, not 535 5.7.8"
        return r

    def starttls(self):
        r = self.cmd("STARTTLS")
        assert r.code == 220, r
        assert not self.buf, f"bytes after 220 to STARTTLS: {self.buf!r}"
        self.sock = unverified_context().wrap_socket(self.sock)

    def quit(self):
        """QUIT (its reply or a close, either is fine) and close."""
        try:
            self.cmd("QUIT")
        except OSError:
            pass
        self.close()


#: the guard and cluster tests' client: a reply may take 15 s (times T)
Conn = functools.partial(Client, timeout=15 * T)


def greeting_of(port, **kw):
    """Connects (Conn(port, **kw)), returns the greeting's last line, QUITs."""
    c = Conn(port, **kw)
    try:
        return c.greeting.line
    finally:
        c.quit()


def wait_until(pred, timeout=15, interval=0.05, what="condition", scale=True):
    """The one polling loop of the tests: calls pred() every `interval` s
    until it returns something truthy, and returns that. Fails after
    `timeout` s (times T unless scale=False), saying what it waited for."""
    limit = timeout * (T if scale else 1)
    deadline = time.monotonic() + limit
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {limit:.2f}s waiting for {what}; "
                                 f"last={last!r}")
        time.sleep(interval)


def wait_greeting(port, prefix, timeout=20, interval=0.2, what=None, **kw):
    """Opens new connections (Conn(port, **kw)) until the greeting starts
    with `prefix`; returns that greeting line."""
    seen = []

    def check():
        seen.append(greeting_of(port, **kw))
        return seen[-1] if seen[-1].startswith(prefix) else None

    return wait_until(check, timeout=timeout, interval=interval,
                      what=f"{what or 'greeting'}: {prefix!r} (last of {len(seen)} "
                           f"polls: {seen[-1] if seen else None!r})")


def fail_auth(port, n, **kw):
    """Opens a session (Conn(port, **kw)), EHLO, n failed AUTHs (each must
    be 535 5.7.8). Returns the open connection."""
    c = Conn(port, **kw)
    assert c.greeting.code == 220, c.greeting
    c.ehlo()
    for _ in range(n):
        c.auth_fail()
    return c
