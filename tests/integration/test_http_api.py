"""The admin HTTP API (SPEC §9): every route and its JSON (the documents of
portcullisctl --json), bearer tokens and the author they record, bad input,
and a listener that keeps serving SMTP and the API through a slow-loris
client and hundreds of garbage connections."""

import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD, Daemon
from guardutil import check_block_shape, check_status_shape, fail_auth, greeting_of
from httputil import (
    OTHER_TOKEN, TOKEN, get, m, metrics, post, raw_http, request, start_http_daemon,
    write_tokens,
)
from smtputil import T


@pytest.fixture
def d(start_daemon, tmp_path):
    return start_http_daemon(start_daemon, tmp_path, guard={"auth_fail_limit": "3"})


# ---- tokens ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/status?ip=127.0.0.1", "/api/v1/stats",
                                  "/api/v1/blocks", "/api/v1/nothing"])
def test_api_needs_a_token(d, path):
    for token in (None, "wrong-token-0123456789abcdef", TOKEN + "x", TOKEN[:-1]):
        r = get(d, path, token=token)
        assert r.status == 401, (path, token, r.status, r.body)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "token" in r.json()["error"]
    r = get(d, path, headers={"Authorization": f"Basic {TOKEN}"}, token=None)
    assert r.status == 401


def test_block_refused_without_token_changes_nothing(d):
    r = post(d, "/api/v1/block", {"ip": "127.0.0.9", "for": "1h"}, token="nope-nope-nope-nope-nope")
    assert r.status == 401
    assert get(d, "/api/v1/status?ip=127.0.0.9").json()["state"] == "clear"


def test_metrics_and_console_need_no_token(d):
    assert request(d.http_port, "GET", "/metrics", token=None).status == 200
    r = request(d.http_port, "GET", "/", token=None)
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_token_file_readable_by_others_is_refused(tmp_path, tls_files):
    dd = Daemon(tmp_path / "t", tls_files)
    tokens = write_tokens(tmp_path / "tokens", mode=0o644)
    dd.write_config(control={"http": "127.0.0.1:1", "http_token_file": str(tokens)})
    for args in (["-t", "-c", str(dd.conf_path)], ["-c", str(dd.conf_path)]):
        cp = subprocess.run([str(BUILD / "portcullisd")] + args, capture_output=True,
                            timeout=20 * T, text=True)
        assert cp.returncode == 1, cp
        assert "http_token_file" in cp.stderr + cp.stdout and "chmod 600" in cp.stderr + cp.stdout
    # a bad line is named too
    write_tokens(tmp_path / "tokens", "desk:short\n")
    cp = subprocess.run([str(BUILD / "portcullisd"), "-t", "-c", str(dd.conf_path)],
                        capture_output=True, timeout=20 * T, text=True)
    assert cp.returncode == 1 and "line 1" in cp.stderr, cp


def test_reload_rereads_the_token_file(d, tmp_path):
    """A rotation needs no restart; a bad file is refused and the tokens in
    use stay."""
    new = "rotated-desk-token-0011223344556677"
    write_tokens(tmp_path / "tokens", f"desk:{new}\nmonitor:{OTHER_TOKEN}\n")
    assert get(d, "/api/v1/stats", token=new).status == 401    # not before the reload
    d.reload()
    assert get(d, "/api/v1/stats", token=new).status == 200
    assert get(d, "/api/v1/stats", token=OTHER_TOKEN).status == 200
    assert get(d, "/api/v1/stats", token=TOKEN).status == 401  # the one taken out
    # the new token's name is the author
    r = post(d, "/api/v1/block", {"ip": "127.0.0.8", "for": "1h"}, token=new)
    assert r.status == 200, r.body
    r = post(d, "/api/v1/unblock", {"ip": "127.0.0.8", "reason": "rotated"}, token=new)
    assert r.json()["block"]["lifted_by"] == "desk"
    # refused: readable by others (SIGHUP), then a bad line (portcullisctl
    # reload, which says why); each time the tokens in use stay
    first = d.mark()
    for text, mode, why in ((f"desk:{TOKEN}\n", 0o644, "chmod 600"),
                            ("desk:short\n", 0o600, "line 1")):
        write_tokens(tmp_path / "tokens", text, mode=mode)
        start = d.mark()
        if mode == 0o644:
            d.send_signal(signal.SIGHUP)
        else:
            cp = d.ctl("reload")
            assert cp.returncode != 0 and why in cp.stderr + cp.stdout, cp
        line = d.wait_log(r"event=reload_refused\b.*$", start=start).group(0)
        assert "http_token_file" in line and why in line, line
        assert get(d, "/api/v1/stats", token=new).status == 200
        assert get(d, "/api/v1/stats", token=TOKEN).status == 401
    assert d.log_lines("reload", start=first) == []
    values, _ = metrics(d)
    assert m(values, "portcullis_reload_failures_total") == 2
    assert m(values, "portcullis_reloads_total") == 1


# ---- the routes and their documents -------------------------------------

def test_status_history_blocks_stats_match_ctl(d):
    c = fail_auth(d.port, 3)
    c.close()
    r = get(d, "/api/v1/status?ip=127.0.0.1")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    st = r.json()
    check_status_shape(st)
    assert st["state"] == "blocked" and st["block"]["reason"] == "auth_failures"
    assert st == d.ctl_json("status", "127.0.0.1")

    h = get(d, "/api/v1/history?ip=127.0.0.1").json()
    assert h == d.ctl_json("history", "127.0.0.1")
    assert h["prefix"] == "127.0.0.1/32" and len(h["blocks"]) == 1
    check_block_shape(h["blocks"][0])

    lst = get(d, "/api/v1/blocks").json()
    assert lst == d.ctl_json("list")
    assert [b["address"] for b in lst["blocks"]] == ["127.0.0.1/32"]
    assert get(d, "/api/v1/blocks?kind=temporary").json() == lst
    assert get(d, "/api/v1/blocks?kind=permanent").json() == {"blocks": []}

    stats = get(d, "/api/v1/stats").json()
    assert stats["auth_fail"] == 3 and stats["active_blocks"] == 1
    assert set(stats) == set(d.ctl_json("stats"))


def test_block_and_unblock_record_the_token_name(d):
    mark = d.mark()
    r = post(d, "/api/v1/block", {"ip": "127.0.0.7", "for": "2h", "reason": "ticket 4711"})
    assert r.status == 200, r.body
    b = r.json()["block"]
    check_block_shape(b)
    assert b["address"] == "127.0.0.7/32" and b["state"] == "blocked" and b["reason"] == "manual"
    assert b["note"] == "ticket 4711"
    d.wait_log(r"event=block ip=127\.0\.0\.7/32 .*by=desk", start=mark)
    assert greeting_of(d.port, source="127.0.0.7").startswith("554")

    r = post(d, "/api/v1/unblock", {"ip": "127.0.0.7", "reason": "customer fixed it"},
             token=OTHER_TOKEN)
    assert r.status == 200, r.body
    lifted = r.json()["block"]
    assert lifted["state"] == "lifted"
    assert lifted["lifted_by"] == "monitor" and lifted["lift_reason"] == "customer fixed it"
    d.wait_log(r"event=unblock ip=127\.0\.0\.7/32 .*by=monitor", start=mark)
    hist = get(d, "/api/v1/history?ip=127.0.0.7").json()["blocks"]
    assert hist[0]["lifted_by"] == "monitor"
    assert greeting_of(d.port, source="127.0.0.7").startswith("220")

    r = post(d, "/api/v1/unblock", {"ip": "127.0.0.7", "reason": "again"})
    assert r.status == 404 and r.json()["error"] == "not blocked"


def test_permanent_block_and_bare_token_named_api(start_daemon, tmp_path):
    d = start_http_daemon(start_daemon, tmp_path)
    write_tokens(tmp_path / "tokens", f"{TOKEN}\n")
    d.reload()
    r = post(d, "/api/v1/block", {"ip": "127.0.0.0/24", "permanent": True})
    assert r.status == 200, r.body
    b = r.json()["block"]
    assert b["state"] == "permanent" and b["expires_at"] is None and b["address"] == "127.0.0.0/24"
    r = post(d, "/api/v1/unblock", {"ip": "127.0.0.0/24"})
    assert r.json()["block"]["lifted_by"] == "api"


# ---- bad input ------------------------------------------------------------

@pytest.mark.parametrize("method,path,body,status,words", [
    ("GET", "/api/v1/status?ip=not-an-ip", None, 400, "not an address"),
    ("GET", "/api/v1/status", None, 400, "not an address"),
    ("GET", "/api/v1/history?ip=300.1.1.1", None, 400, "not an address"),
    ("GET", "/api/v1/status?ip=%zz", None, 400, "not an address"),
    ("GET", "/api/v1/blocks?kind=some", None, 400, "kind"),
    ("POST", "/api/v1/block", {"ip": "127.0.0.8", "for": "soon"}, 400, "duration"),
    ("POST", "/api/v1/block", {"ip": "127.0.0.8", "for": "0s"}, 400, "duration"),
    ("POST", "/api/v1/block", {"ip": "127.0.0.8"}, 400, "duration"),
    ("POST", "/api/v1/block", {"ip": "127.0.0.8", "for": "1h", "permanent": True}, 400, "not both"),
    ("POST", "/api/v1/block", {"ip": "x", "for": "1h"}, 400, "not an address"),
    ("POST", "/api/v1/block", {"ip": "127.0.0.8", "for": "1h", "reason": 5}, 400, "reason"),
    ("POST", "/api/v1/block", b"{not json", 400, "JSON"),
    ("POST", "/api/v1/block", b"[1,2]", 400, "JSON object"),
    ("POST", "/api/v1/unblock", b"", 400, "JSON"),
    ("POST", "/api/v1/block", b'{"ip":"127.0.0.8","ip":"127.0.0.9","for":"1h"}', 400, "JSON"),
    ("GET", "/api/v1/nothing", None, 404, "no such"),
    ("GET", "/api/v1/account", None, 400, "name"),
    ("POST", "/api/v1/unlock", {"name": "alice"}, 404, "not locked"),
    ("POST", "/api/v1/unlock", {"name": ""}, 400, "name"),
    ("GET", "/nothing", None, 404, "no such"),
    ("POST", "/api/v1/status?ip=127.0.0.1", {}, 405, "GET"),
    ("GET", "/api/v1/block", None, 405, "POST"),
    ("DELETE", "/api/v1/blocks", None, 405, "GET"),
    ("PUT", "/metrics", b"x", 405, "GET"),
])
def test_bad_requests(d, method, path, body, status, words):
    r = request(d.http_port, method, path, body=body)
    assert r.status == status, (r.status, r.body)
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert words.lower() in err.lower(), err
    if status == 405:
        assert r.headers["allow"] == words
    # nothing was blocked by any of it
    assert get(d, "/api/v1/blocks").json() == {"blocks": []}


def test_body_over_64k_is_400(d):
    pad = "x" * (65 * 1024)
    r = post(d, "/api/v1/block", {"ip": "127.0.0.8", "for": "1h", "reason": pad})
    assert r.status == 400 and "64 KB" in r.json()["error"]
    # far over the limit (past twice 64 KB): refused unread by evhttp itself
    r = request(d.http_port, "POST", "/api/v1/block", body=b"{" + b" " * (300 * 1024) + b"}")
    assert r.status == 413
    assert get(d, "/api/v1/blocks").json() == {"blocks": []}


def test_garbage_request_line_and_huge_headers(d):
    out = raw_http(d.http_port, b"\x16\x03\x01 garbage garbage\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:100]
    out = raw_http(d.http_port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert out == b"" or out.split(b" ", 2)[1] in (b"400", b"413", b"431"), out[:100]
    assert get(d, "/api/v1/stats").status == 200


# ---- a hostile client never holds the rest up -----------------------------

def test_slowloris_and_garbage_connections(d):
    stop = threading.Event()
    held = []

    def slowloris():
        # a request that never ends: one header byte every half second
        for _ in range(20):
            try:
                s = socket.create_connection(("127.0.0.1", d.http_port), timeout=5)
                s.sendall(b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n")
                held.append(s)
            except OSError:
                pass
        t0 = time.monotonic()
        while not stop.is_set() and time.monotonic() - t0 < 30 * T:
            for s in list(held):
                try:
                    s.sendall(b"X")
                except OSError:
                    held.remove(s)
            time.sleep(0.5)

    def garbage():
        for i in range(500):
            if stop.is_set():
                return
            try:
                s = socket.create_connection(("127.0.0.1", d.http_port), timeout=5)
                s.sendall(bytes((i * 7 + k) % 256 for k in range(64)) + b"\r\n\r\n")
                s.close()
            except OSError:
                pass

    threads = [threading.Thread(target=slowloris), threading.Thread(target=garbage)]
    for t in threads:
        t.start()
    try:
        t0 = time.monotonic()
        for i in range(10):
            r = get(d, "/api/v1/stats")
            assert r.status == 200
            assert greeting_of(d.port).startswith("220")
        # the slow requests are cut off once their time to send is over
        deadline = time.monotonic() + 25 * T
        while held and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not held, f"{len(held)} slow-loris connections still open after the request time"
        assert time.monotonic() - t0 < 60 * T
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for s in held:
            s.close()
    assert d.running()
    assert get(d, "/api/v1/stats").status == 200


def test_https_with_the_tls_certificate(start_daemon, tmp_path):
    import http.client
    from smtputil import unverified_context
    d = start_http_daemon(start_daemon, tmp_path, public=False)
    port = d.http_port
    d.stop()
    d.write_config(control={"http": f"127.0.0.1:{port}/tls"})
    d.start()
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10 * T,
                                       context=unverified_context())
    conn.request("GET", "/api/v1/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    r = conn.getresponse()
    assert r.status == 200 and "uptime_s" in json.loads(r.read())
    conn.close()
    # plain HTTP on the TLS port gets nothing useful, and the listener lives on
    out = raw_http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"portcullis_" not in out
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10 * T,
                                       context=unverified_context())
    conn.request("GET", "/metrics")
    assert conn.getresponse().status == 200
    conn.close()


def test_connections_at_once_are_capped(d):
    """Past 256 open connections the daemon stops accepting (the rest wait
    in the kernel's backlog, seen as the listening socket's Recv-Q); once
    they close, it serves again."""
    socks = []
    try:
        for _ in range(300):
            socks.append(socket.create_connection(("127.0.0.1", d.http_port), timeout=5))

        def backlog():
            out = subprocess.run(["ss", "-Hltn", f"sport = :{d.http_port}"], capture_output=True,
                                 text=True, timeout=10).stdout.split()
            return int(out[1]) if len(out) > 1 else -1

        deadline = time.monotonic() + 5 * T
        while backlog() < 300 - 256 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert backlog() >= 300 - 256, backlog()
        assert backlog() <= 300 - 256 + 5
    finally:
        for s in socks:
            s.close()
    assert get(d, "/api/v1/stats", timeout=20).status == 200
