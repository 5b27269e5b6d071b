"""Shared harness for Portcullis integration tests.

Starts the real `portcullisd` on free loopback ports with a temporary
configuration, users file, TLS certificate, Maildir and store, and gives the
tests a `Daemon` object to talk to it (SMTP, portcullisctl, signals, logs).

Environment:
  PORTCULLIS_BUILD      build folder holding portcullisd and portcullisctl
                        (default: <repo>/build)
  PORTCULLIS_SANITIZED  "1": the binaries are ASan/UBSan builds; every
                        timeout is multiplied by 3
"""

import functools
import json as jsonlib
import os
import re
import signal
import smtplib
import subprocess
import time
import warnings
from pathlib import Path

import pytest

# the raw client and the socket helpers live in smtputil; these names stay
# importable from conftest
from smtputil import (  # noqa: F401
    SANITIZED, T, Client, free_ports, plain_b64, unverified_context, wait_until,
)

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PORTCULLIS_BUILD") or (REPO / "build")).resolve()

HOSTNAME = "mx.test.example"
CLIENT_NAME = "client.test"
DEFAULT_USERS = {
    "alice@example.test": "alice-secret",
    "bob@example.test": "bob-secret",
}

SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"WARNING: ThreadSanitizer|SUMMARY: UndefinedBehaviorSanitizer"
)

CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE,
                 signal.SIGILL}

SECTION_ORDER = ["server", "tls", "auth", "guard", "store", "delivery",
                 "control", "log"]


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")


# --------------------------------------------------------------------------
# helpers


def hash_password(password):
    """A sha512-crypt hash (crypt(5)) of `password`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # noqa: deprecated, present in Debian's 3.11
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    except ImportError:
        out = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                             input=password.encode(), capture_output=True,
                             check=True, timeout=30)
        return out.stdout.decode().strip()


#: the client Daemon.raw() returns: no greeting read; RawSMTP(port, host,
#: timeout, tls) as before
RawSMTP = functools.partial(Client, greet=False)


# --------------------------------------------------------------------------
# the daemon


class Daemon:
    def __init__(self, dirpath, tls_files, users=None, sections=None):
        self.dir = Path(dirpath)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.build = BUILD
        self.hostname = HOSTNAME
        self.conf_path = self.dir / "portcullis.conf"
        self.users_path = self.dir / "users"
        self.log_path = self.dir / "daemon.log"
        self.maildir = self.dir / "var" / "mail"
        self.port, self.tls_port = free_ports(2)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.proc = None
        self.killed = False
        self.exit_codes = []
        cert, key = tls_files
        self.sections = {
            "server": {
                "hostname": HOSTNAME,
                "listen": f"127.0.0.1:{self.port}/starttls 127.0.0.1:{self.tls_port}/tls",
                "workers": "2",
                "timeout_command": "30s",
            },
            "tls": {
                "cert": str(cert),
                "key": str(key),
                "require_tls_for_auth": "yes",
                "plain_auth_from": "127.0.0.0/8 ::1/128",
            },
            "auth": {
                "users": "users",
                "failure_delay": "0s",
            },
            "guard": {
                "auth_fail_limit": "1000",
                "unauth_limit": "1000",
                "conn_rate_limit": "100000",
                "concurrency_limit": "1000",
            },
            "store": {"path": "var/portcullis.db"},
            "delivery": {"maildir": "var/mail"},
            "control": {"socket": "var/portcullis.sock"},
            "log": {"level": "debug"},
        }
        (self.dir / "var").mkdir(exist_ok=True)
        self._merge(sections or {})
        self.write_users()
        self._write_conf()

    # ---- configuration

    def _merge(self, sections):
        for name, values in sections.items():
            sec = self.sections.setdefault(name, {})
            for k, v in (values or {}).items():
                if v is None:
                    sec.pop(k, None)
                else:
                    sec[k] = str(v)

    def config_text(self):
        names = [s for s in SECTION_ORDER if s in self.sections]
        names += [s for s in self.sections if s not in SECTION_ORDER]
        out = []
        for name in names:
            out.append(f"[{name}]")
            for k, v in self.sections[name].items():
                out.append(f"{k} = {v}")
            out.append("")
        return "\n".join(out)

    def _write_conf(self):
        tmp = self.conf_path.with_suffix(".tmp")
        tmp.write_text(self.config_text())
        os.replace(tmp, self.conf_path)

    def write_config(self, **sections):
        """Merge `sections` ({key: value}, value None removes the key) into
        the current configuration and rewrite the file."""
        self._merge(sections)
        self._write_conf()

    def write_users(self, users=None):
        """Rewrite the users file (and self.users) with `users` (or self.users)."""
        if users is not None:
            self.users = dict(users)
        lines = [f"{a}:{hash_password(p)}" for a, p in self.users.items()]
        tmp = self.users_path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + ("\n" if lines else ""))
        os.replace(tmp, self.users_path)

    def add_user(self, address, password):
        self.users[address] = password
        self.write_users()

    # ---- process

    def mark(self):
        """The current length of the log: pass as `start` to wait_log()."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def start(self, ready_timeout=None):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        exe = self.build / "portcullisd"
        assert exe.exists(), f"{exe} not built"
        start = self.mark()
        self.killed = False
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([str(exe), "-c", str(self.conf_path)],
                                         stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, cwd=str(self.dir),
                                         start_new_session=True)
        finally:
            logf.close()
        self.wait_log(r"event=ready|\"event\":\"ready\"", timeout=ready_timeout or 20, start=start)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self, start=0):
        """All the daemon's stderr so far (from byte offset `start`)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10, start=0):
        """Poll the log until `regex` matches (from offset `start`); return the
        match. Fails with the log on timeout or if the daemon exits first."""
        pat = re.compile(regex, re.M)

        def logged():
            m = pat.search(self.log(start))
            if m is None and self.proc is not None and self.proc.poll() is not None:
                # one last look: the line may have been written just before exit
                m = pat.search(self.log(start))
                if m is None:
                    pytest.fail(f"daemon exited ({self.proc.returncode}) before logging "
                                f"/{regex}/; log:\n{self.log()[-6000:]}")
            return m

        return wait_until(logged, timeout=timeout,
                          what=f"/{regex}/ in the daemon log {self.log_path}")

    def log_lines(self, event, start=0):
        """The log lines with event=<event>, each as a dict of its logfmt fields."""
        out = []
        for line in self.log(start).splitlines():
            fields = parse_logfmt(line)
            if fields.get("event") == event:
                out.append(fields)
        return out

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, wait (bounded), SIGKILL if needed. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout * T)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.killed = True
                self.proc.wait(timeout=30)
        self.exit_codes.append(self.proc.returncode)
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.killed = True
            self.proc.wait(timeout=30)
            self.exit_codes.append(self.proc.returncode)

    def restart(self):
        """Start again with the same configuration, ports and files."""
        if self.running():
            self.stop()
        return self.start()

    def reload(self, timeout=10):
        """SIGHUP and wait for the event=reload line it causes."""
        start = self.mark()
        self.send_signal(signal.SIGHUP)
        return self.wait_log(r"event=reload\b.*$", timeout=timeout, start=start)

    # ---- clients

    def ctl(self, *args, json=False, input=None, check=False, timeout=30):
        cmd = [str(self.build / "portcullisctl"), "-c", str(self.conf_path)]
        if json:
            cmd.append("--json")
        cmd += [str(a) for a in args]
        if isinstance(input, str):
            input = input.encode()
        cp = subprocess.run(cmd, input=input, capture_output=True,
                            timeout=timeout * T, cwd=str(self.dir))
        cp.stdout = cp.stdout.decode("utf-8", "replace")
        cp.stderr = cp.stderr.decode("utf-8", "replace")
        if check and cp.returncode != 0:
            pytest.fail(f"{cmd} exited {cp.returncode}: {cp.stderr}{cp.stdout}")
        return cp

    def ctl_json(self, *args):
        cp = self.ctl(*args, json=True)
        assert cp.returncode == 0, f"portcullisctl {args} exited {cp.returncode}: {cp.stderr}"
        try:
            return jsonlib.loads(cp.stdout)
        except ValueError as e:
            pytest.fail(f"portcullisctl --json {args} printed no JSON ({e}): {cp.stdout!r}")

    def smtp(self, port=None, **kw):
        kw.setdefault("local_hostname", CLIENT_NAME)
        kw.setdefault("timeout", 10 * T)
        return smtplib.SMTP("127.0.0.1", port or self.port, **kw)

    def smtps(self, port=None, **kw):
        """smtplib.SMTP_SSL to the implicit-TLS listener (certificate unchecked)."""
        kw.setdefault("local_hostname", CLIENT_NAME)
        kw.setdefault("timeout", 10 * T)
        kw.setdefault("context", unverified_context())
        return smtplib.SMTP_SSL("127.0.0.1", port or self.tls_port, **kw)

    def raw(self, port=None, tls=False, **kw):
        """A smtputil.Client on the STARTTLS (or, tls=True, the implicit-TLS)
        port that has not read the greeting yet; kw as Client's."""
        return RawSMTP(port or (self.tls_port if tls else self.port), tls=tls, **kw)

    def authed(self, user="alice@example.test", password=None, tls=False, port=None):
        """An smtplib session after EHLO (+ STARTTLS if tls) and AUTH PLAIN."""
        s = self.smtp(port)
        s.ehlo()
        if tls:
            s.starttls(context=unverified_context())
            s.ehlo()
        code, msg = s.auth("PLAIN", lambda challenge=None: f"\0{user}\0{password or self.users[user]}")
        assert code == 235, (code, msg)
        return s

    # ---- delivery

    def message_files(self):
        new = self.maildir / "new"
        if not new.is_dir():
            return []
        files = [p for p in new.iterdir() if p.is_file()]
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return files

    def messages(self):
        return [p.read_bytes() for p in self.message_files()]

    def sanitizer_reports(self):
        return [l for l in self.log().splitlines() if SANITIZER_PATTERNS.search(l)]


def parse_logfmt(line):
    fields = {}
    for m in re.finditer(r'(\w[\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        fields[m.group(1)] = v
    return fields


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "30",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def start_daemon(tmp_path, tls_files):
    started = []

    def factory(users=None, **sections):
        assert (BUILD / "portcullisd").exists(), \
            f"no {BUILD}/portcullisd: build first or set PORTCULLIS_BUILD"
        d = Daemon(tmp_path / f"d{len(started)}", tls_files, users=users,
                   sections=sections)
        started.append(d)
        d.start()
        return d

    yield factory

    problems = []
    for d in started:
        try:
            d.stop(timeout=10)
        except Exception as e:  # keep tearing the others down
            problems.append(f"stopping {d.dir}: {e!r}")
        rc = d.proc.returncode if d.proc is not None else None
        if rc is not None and -rc in CRASH_SIGNALS and not d.killed:
            problems.append(f"the daemon in {d.dir} died of signal {-rc}; log tail:\n"
                            + d.log()[-8000:])
        reports = d.sanitizer_reports()
        if reports:
            problems.append(f"sanitizer reports from the daemon in {d.dir}:\n"
                            + "\n".join(reports[:20]) + "\n--- log tail:\n"
                            + d.log()[-8000:])
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def daemon(start_daemon):
    return start_daemon()


# --------------------------------------------------------------------------
# delivered files


class Delivered:
    """A Maildir file split into the headers Portcullis adds and the message."""

    def __init__(self, data):
        self.data = data
        lines = data.split(b"\n")
        i = 0
        assert lines[i].startswith(b"Return-Path: "), \
            f"file does not start with Return-Path: {data[:300]!r}"
        self.return_path = lines[i][len(b"Return-Path: "):].decode("utf-8")
        i += 1
        self.envelope_to = []
        while lines[i].startswith(b"X-Envelope-To: "):
            self.envelope_to.append(lines[i][len(b"X-Envelope-To: "):].decode("utf-8"))
            i += 1
        assert lines[i].startswith(b"Received: "), \
            f"no Received: after the envelope lines: {data[:600]!r}"
        rec = [lines[i]]
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            rec.append(lines[i])
            i += 1
        self.received_raw = b"\n".join(rec)
        # unfolded, whitespace runs collapsed
        self.received = re.sub(r"\s+", " ",
                               b" ".join(rec).decode("utf-8", "replace"))
        self.body = b"\n".join(lines[i:])


def queue_id(reply_text):
    """The id from '2.0.0 Ok: queued as ID'."""
    if isinstance(reply_text, bytes):
        reply_text = reply_text.decode()
    m = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", reply_text)
    assert m, f"not a '250 2.0.0 Ok: queued as <id>' reply: {reply_text!r}"
    return m.group(1)
