"""The admin HTTP API and the self-service page, for the integration tests:
a daemon started with [control] http / public_http and a token file, and a
small http.client wrapper (no redirects, no proxies, loopback only)."""

import http.client
import json
import os
import socket

from smtputil import T, free_ports

TOKEN = "desk-token-0123456789abcdef"
OTHER_TOKEN = "monitor-token-9876543210fedcba"


def write_tokens(path, text=None, mode=0o600):
    path.write_text(text if text is not None
                    else f"# the desk and a monitor\ndesk:{TOKEN}\nmonitor:{OTHER_TOKEN}\n")
    os.chmod(path, mode)
    return path


def start_http_daemon(start_daemon, tmp_path, public=True, control=None, **sections):
    """A daemon with the admin API (and the self-service page); .http_port
    and .public_port are set on it."""
    api_port, pub_port = free_ports(2)
    tokens = write_tokens(tmp_path / "tokens")
    ctl = {"http": f"127.0.0.1:{api_port}", "http_token_file": str(tokens)}
    if public:
        ctl["public_http"] = f"127.0.0.1:{pub_port}"
    ctl.update(control or {})
    d = start_daemon(control=ctl, **sections)
    d.http_port, d.public_port = api_port, pub_port
    return d


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8")


def request(port, method, path, body=None, token=TOKEN, headers=None, source=None,
            timeout=10):
    """One request on a fresh connection; body: a dict (sent as JSON), bytes or None."""
    h = {"Connection": "close"}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * T,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def get(d, path, **kw):
    return request(d.http_port, "GET", path, **kw)


def post(d, path, body, **kw):
    return request(d.http_port, "POST", path, body=body, **kw)


def public(d, path="/", source=None, headers=None):
    return request(d.public_port, "GET", path, token=None, source=source, headers=headers)


def raw_http(port, data, timeout=10):
    """Sends raw bytes, returns everything read until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * T)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def metrics(d):
    """/metrics parsed: {(name, frozenset(labels.items())): value}."""
    r = request(d.http_port, "GET", "/metrics", token=None)
    assert r.status == 200, r.status
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            for part in rest.rstrip("}").split(","):
                k, v = part.split("=", 1)
                labels[k] = v.strip('"')
        else:
            name = name_labels
        out[(name, frozenset(labels.items()))] = float(value)
    return out, r.text


def m(values, name, **labels):
    return values[(name, frozenset(labels.items()))]
