"""Helpers for the cluster-mode (`[store] backend = redis`) integration tests.

Starts a private Debian `redis-server` on a free loopback port (no
persistence, its own temp dir) and several portcullisd nodes on it, built on
conftest's `start_daemon` (one folder, config, log, ports and var/ each).
SMTP goes through smtputil's client, which can pick its source address
(127.0.0.x are all local, so each test blocks its own "client" address
without locking itself out); this adds the control socket spoken directly
and bounded polling. Only the standard library; no mocks.
"""

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from smtputil import (  # noqa: F401  (re-exported for the tests)
    ALICE, BLOCK_KEYS, COUNTER_KEYS, REJECT_TEXT, STATUS_KEYS, T, Closed, Conn,
    fail_auth as _fail_auth, free_port, greeting_of, wait_until,
    wait_greeting as _wait_greeting,
)


#: The spec's bound for a block, unblock or expiry to reach every node is
#: 100 ms; the tests allow 2 s (shared 2-core machine) and poll every 20 ms.
PROPAGATION_LIMIT = 2.0
POLL_INTERVAL = 0.02


def greeting_554(hostname):
    return f"554 {hostname} {REJECT_TEXT}"


def reply_421(hostname):
    return f"421 4.7.0 {hostname} {REJECT_TEXT}"


# --------------------------------------------------------------------------
# redis-server


def ensure_redis():
    """Paths of redis-server and redis-cli; installs Debian's redis-server
    (apt-get) when missing. Fails the test if that is impossible."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server and cli:
        return server, cli
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server", "redis-tools"],
                       capture_output=True, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"redis-server is missing and apt-get could not install it: {e!r}")
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not (server and cli):
        pytest.fail("redis-server/redis-cli are missing and apt-get install redis-server failed "
                    "(scripts/deps.sh test installs it)")
    return server, cli


class Redis:
    """A private redis-server: 127.0.0.1:port, or a unix socket, no persistence."""

    def __init__(self, dirpath, port=None, password=None, unix=False):
        self.server_exe, self.cli_exe = ensure_redis()
        self.dir = Path(dirpath)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.unixsocket = str(self.dir / "redis.sock") if unix else None
        self.log_path = self.dir / "redis.log"
        self.proc = None
        self.starts = 0

    @property
    def address(self):
        """The value for `[store] redis`."""
        return f"unix:{self.unixsocket}" if self.unixsocket else f"127.0.0.1:{self.port}"

    def start(self, timeout=15):
        assert self.proc is None or self.proc.poll() is not None, "redis already running"
        args = [self.server_exe, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--daemonize", "no", "--protected-mode", "no", "--loglevel", "notice"]
        if self.unixsocket:
            args += ["--unixsocket", self.unixsocket, "--unixsocketperm", "700"]
        if self.password:
            args += ["--requirepass", self.password]
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, cwd=str(self.dir),
                                         start_new_session=True)
        finally:
            logf.close()
        self.starts += 1

        def answers():
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited ({self.proc.returncode}); log:\n"
                            + self.log_path.read_text(errors="replace")[-3000:])
            return self.ping()

        wait_until(answers, timeout=timeout, what="redis-server to answer PING")
        return self

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    if not s.recv(100).startswith(b"+OK"):
                        return False
                s.sendall(b"PING\r\n")
                return s.recv(100).startswith(b"+PONG")
        except OSError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def cli(self, *args, db=None):
        """redis-cli output (raw: one value per line), stripped."""
        cmd = [self.cli_exe, "-h", "127.0.0.1", "-p", str(self.port)]
        if self.password:
            cmd += ["--no-auth-warning", "-a", self.password]
        if db is not None:
            cmd += ["-n", str(db)]
        cmd += [str(a) for a in args]
        cp = subprocess.run(cmd, capture_output=True, timeout=20 * T)
        assert cp.returncode == 0, f"{cmd} exited {cp.returncode}: {cp.stderr!r}"
        return cp.stdout.decode("utf-8", "replace").strip()

    def smembers(self, key, db=None):
        out = self.cli("smembers", key, db=db)
        return set(out.split("\n")) if out else set()

    def block_records(self, prefix="portcullis:", db=None, active_only=True):
        """{block id: {field: value}} read straight from Redis."""
        ids = self.smembers(prefix + "active", db=db) if active_only else \
            set(filter(None, self.cli("zrange", prefix + "bytime", 0, -1, db=db).split("\n")))
        out = {}
        for i in ids:
            flat = self.cli("hgetall", prefix + "block:" + i, db=db).split("\n")
            out[i] = dict(zip(flat[0::2], flat[1::2]))
        return out

    def active_prefixes(self, prefix="portcullis:", db=None):
        return {rec.get("prefix") for rec in self.block_records(prefix, db=db).values()}


class Forwarder:
    """A TCP forwarder 127.0.0.1:port -> 127.0.0.1:target, so some nodes can
    reach Redis by another path than others. close() drops the listener and
    every forwarded connection (like a dead Redis, for the nodes behind it);
    open() listens again on the same port."""

    def __init__(self, target_port, port=None):
        self.target = target_port
        self.port = port or free_port()
        self.lsock = None
        self.sel = None
        self.thread = None
        self.stop_flag = threading.Event()
        self.pairs = {}

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def open(self):
        assert self.thread is None, "already open"
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ)
        self.stop_flag.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _drop(self, s):
        peer = self.pairs.pop(s, None)
        for x in (s, peer):
            if x is None:
                continue
            self.pairs.pop(x, None)
            try:
                self.sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    def _run(self):
        while not self.stop_flag.is_set():
            for key, _ in self.sel.select(timeout=0.05):
                s = key.fileobj
                if s is self.lsock:
                    try:
                        c, _ = self.lsock.accept()
                    except OSError:
                        continue
                    try:
                        u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                    except OSError:
                        c.close()
                        continue
                    for x in (c, u):
                        x.setblocking(False)
                        self.sel.register(x, selectors.EVENT_READ)
                    self.pairs[c], self.pairs[u] = u, c
                    continue
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                peer = self.pairs.get(s)
                if not data or peer is None:
                    self._drop(s)
                    continue
                try:
                    peer.setblocking(True)
                    peer.settimeout(5)
                    peer.sendall(data)
                    peer.setblocking(False)
                except OSError:
                    self._drop(s)
        for s in list(self.pairs):
            self._drop(s)
        self.sel.unregister(self.lsock)
        self.lsock.close()
        self.sel.close()

    def close(self):
        if self.thread is not None:
            self.stop_flag.set()
            self.thread.join(timeout=10)
            self.thread = None


class Via:
    """Redis as seen through a Forwarder: what start_node needs."""

    def __init__(self, redis, forwarder):
        self.address = forwarder.address
        self.password = redis.password


# --------------------------------------------------------------------------
# nodes


def node_sections(redis, hostname, guard=None, store=None):
    store_sec = {"backend": "redis", "redis": redis.address}
    if redis.password:
        store_sec["redis_password"] = redis.password
    store_sec.update(store or {})
    return {
        "server": {"hostname": hostname},
        "store": store_sec,
        "guard": dict(guard or {}),
    }


def start_node(start_daemon, redis, hostname, guard=None, store=None, wait_connected=True):
    """One portcullisd on `redis`, waiting until it has loaded the shared view."""
    d = start_daemon(**node_sections(redis, hostname, guard, store))
    d.node_name = hostname
    if wait_connected:
        wait_connected_log(d)
    return d


def wait_connected_log(d, start=0, timeout=15):
    """The node logged that it (re)connected to Redis and synchronised."""
    return d.wait_log(r"event=redis_(connected|up)\b", timeout=timeout, start=start)


def start_cluster(start_daemon, redis, n=3, guard=None, store=None, names=None):
    names = names or [f"node{i + 1}" for i in range(n)]
    return [start_node(start_daemon, redis, name, guard=guard, store=store) for name in names]


def ctl_socket_path(d):
    return d.dir / "var" / "portcullis.sock"


# --------------------------------------------------------------------------
# SMTP


def greeting(d, source):
    """The greeting line a new connection from `source` gets from node d."""
    return greeting_of(d.port, source=source, timeout=10 * T)


def fail_auth(d, source, times):
    """`times` wrong passwords in one session from `source` on node d; each
    must get 535. Returns the still open connection (after the last 535)."""
    return _fail_auth(d.port, times, source=source)


def submit(d, source=None, user=ALICE, rcpt="rcpt@example.org"):
    """A full authenticated submission on node d; returns the reply to the
    end of DATA (the caller asserts on it)."""
    with Conn(d.port, source=source) as c:
        assert c.greeting.line.startswith("220 "), f"{d.node_name}: greeting {c.greeting!r}"
        c.ehlo()
        r = c.auth_plain(*user)
        assert r.line.startswith("235 "), f"{d.node_name}: AUTH got {r!r}"
        r = c.cmd(f"MAIL FROM:<{user[0]}>")
        assert r.line.startswith("250"), f"{d.node_name}: MAIL got {r!r}"
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        assert r.line.startswith("250"), f"{d.node_name}: RCPT got {r!r}"
        r = c.cmd("DATA")
        assert r.line.startswith("354"), f"{d.node_name}: DATA got {r!r}"
        r = c.cmd(f"From: <{user[0]}>\r\nTo: <{rcpt}>\r\nSubject: cluster test\r\n\r\n"
                  f"sent through {d.node_name}\r\n.")
        c.quit()
        return r


# --------------------------------------------------------------------------
# polling


def wait_greeting(d, source, prefix, timeout=PROPAGATION_LIMIT, what=None):
    """Polls new connections from `source` to node d every 20 ms until the
    greeting starts with `prefix`; returns the seconds it took."""
    t0 = time.monotonic()
    _wait_greeting(d.port, prefix, timeout=timeout, interval=POLL_INTERVAL, source=source,
                   what=f"{what or 'propagation'} for {source} on {d.node_name}")
    return time.monotonic() - t0


# --------------------------------------------------------------------------
# the control socket, spoken directly


def ctl_request(d, req, timeout=10):
    """One JSON request on node d's control socket; the parsed reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * T)
    try:
        s.connect(str(ctl_socket_path(d)))
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return json.loads(buf.split(b"\n", 1)[0])


def state_of(d, ip):
    """`state` of portcullisctl --json status IP on node d."""
    return d.ctl_json("status", ip)["state"]


def log_count(d, event):
    return len(d.log_lines(event))


# --------------------------------------------------------------------------
# fixtures (import them into the test module)


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path / "redis").start()
    yield r
    r.kill9()


@pytest.fixture
def redis_factory(tmp_path):
    """Makes more (or differently configured) redis-servers: kwargs as Redis().
    Request it before start_daemon so the nodes stop first."""
    made = []

    def make(name="redis2", **kw):
        r = Redis(tmp_path / name, **kw)
        made.append(r)
        return r.start()
    yield make
    for r in made:
        r.kill9()


@pytest.fixture
def cluster(redis, start_daemon):
    """Three nodes node1..node3 on one redis; a factory taking the [guard]
    settings (and optional [store] extras). Requested after `redis`, so the
    nodes stop before redis does."""
    def make(guard=None, n=3, store=None):
        return start_cluster(start_daemon, redis, n=n, guard=guard, store=store)
    return make
