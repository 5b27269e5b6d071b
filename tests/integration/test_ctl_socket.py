"""portcullisctl exit codes (0 done, 1 failed, 2 usage) and a control socket
that survives garbage: it answers with an error or closes, never dies."""

import json
import os
import socket
import stat
import subprocess

import pytest

from guardutil import T, greeting_of, read_all_until_close, status


def sock_path(d):
    return str(d.dir / "var" / "portcullis.sock")


@pytest.mark.parametrize("args", [
    ["status", "not-an-ip"],
    ["status", "203.0.113.0/33"],
    ["status", "999.1.2.3"],
    ["status", "2001:db8::/129"],
    ["history", "bogus"],
    ["block", "300.1.1.1", "--for", "1h"],
    ["unblock", "nope"],
    ["status"],
    ["frobnicate", "127.0.0.1"],
    [],
    ["block", "203.0.113.9", "--for", "soon"],
    ["list", "--sideways"],
])
def test_usage_errors_exit_2(daemon, args):
    cp = daemon.ctl(*args)
    assert cp.returncode == 2, (args, cp.returncode, cp.stdout, cp.stderr)
    assert cp.stderr.strip(), "a usage error says what is wrong on stderr"
    # nothing was blocked by a bad request
    assert daemon.ctl_json("list")["blocks"] == []


def test_json_usage_error_exits_2(daemon):
    cp = daemon.ctl("status", "not-an-ip", json=True)
    assert cp.returncode == 2, cp
    assert cp.stderr.strip()


def test_daemon_not_running_exits_1_naming_the_socket(start_daemon):
    d = start_daemon()
    assert d.ctl("status", "127.0.0.1").returncode == 0
    d.stop()
    for args, js in ((["status", "127.0.0.1"], False), (["status", "127.0.0.1"], True),
                     (["list"], True), (["block", "203.0.113.1", "--for", "1h"], False)):
        cp = d.ctl(*args, json=js)
        assert cp.returncode == 1, (args, cp.returncode, cp.stderr)
        assert "portcullis.sock" in cp.stderr, cp.stderr
        assert "not running" in cp.stderr.lower(), cp.stderr
    # a bad address is still a usage error, daemon or not
    assert d.ctl("status", "not-an-ip").returncode == 2


def test_control_socket_mode_is_0600(daemon):
    st = os.stat(sock_path(daemon))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


def _exchange(path, payload, shut=True, timeout=10):
    """Sends payload; returns (data, closed). A reset or broken pipe while
    sending counts as a close."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * T)
    s.connect(path)
    try:
        try:
            s.sendall(payload)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            data, closed = read_all_until_close(s, 2)
            return data, True
        return read_all_until_close(s, timeout)
    finally:
        s.close()


def _assert_error_or_close(name, data, closed):
    assert closed or data, f"{name}: neither an answer nor a close"
    if data:
        text = data.decode("utf-8", "replace").lower()
        assert "error" in text or "unknown" in text or "invalid" in text or '"ok": false' in text \
            or '"ok":false' in text, f"{name}: answer is not an error: {data[:300]!r}"


def test_control_socket_survives_garbage(start_daemon):
    d = start_daemon()
    path = sock_path(d)
    rnd = os.urandom(4096)
    cases = [
        ("random bytes", rnd + b"\n"),
        ("random bytes without newline", os.urandom(1000)),
        ("1 MB line", b"A" * (1 << 20) + b"\n"),
        ("1 MB JSON string", b'{"command": "status", "ip": "' + b"1" * (1 << 20) + b'"}\n'),
        ("invalid JSON", b'{"command": "status", "ip": \n'),
        ("JSON not an object", b'[1, 2, 3]\n'),
        ("JSON wrong types", b'{"command": 42, "cmd": 42, "ip": {"a": 1}}\n'),
        ("unknown command", json.dumps({"command": "frobnicate", "cmd": "frobnicate",
                                        "op": "frobnicate", "args": []}).encode() + b"\n"),
        ("NUL bytes", b"\x00" * 100 + b"\n"),
        ("empty line", b"\n"),
        ("deep nesting", b"[" * 100000 + b"]" * 100000 + b"\n"),
    ]
    for name, payload in cases:
        data, closed = _exchange(path, payload)
        if name not in ("empty line",):
            _assert_error_or_close(name, data, closed)
        assert d.running(), f"daemon died after {name}"
        cp = d.ctl("status", "127.0.0.1")
        assert cp.returncode == 0, (name, cp.stderr)
    # connect and hang up at once, many times
    for _ in range(50):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.close()
    assert status(d, "127.0.0.1")["state"] == "clear"
    assert greeting_of(d.port).startswith("220 ")
    assert d.running()


def test_stalled_control_clients_do_not_block_others(start_daemon):
    d = start_daemon()
    path = sock_path(d)
    stalled = []
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.sendall(b'{"command": "sta')      # half a request, then silence
            stalled.append(s)
        cp = d.ctl("status", "127.0.0.1", json=True, timeout=20)
        assert cp.returncode == 0, cp.stderr
        assert json.loads(cp.stdout)["state"] == "clear"
        cp = d.ctl("block", "203.0.113.50", "--for", "1h", timeout=20)
        assert cp.returncode == 0, cp.stderr
        assert greeting_of(d.port).startswith("220 ")
    finally:
        for s in stalled:
            s.close()
    assert status(d, "203.0.113.50")["state"] == "blocked"


def test_ctl_with_other_config_exits_1(start_daemon, tmp_path):
    """-c picks the configuration, and with it the socket: a configuration
    whose socket nobody listens on gives exit 1."""
    d = start_daemon()
    other = tmp_path / "other.conf"
    other.write_text(d.conf_path.read_text().replace("var/portcullis.sock", "var/nobody.sock"))
    cp = subprocess.run([str(d.build / "portcullisctl"), "-c", str(other), "status", "127.0.0.1"],
                        capture_output=True, text=True, timeout=30 * T, cwd=str(tmp_path))
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert "nobody.sock" in cp.stderr
