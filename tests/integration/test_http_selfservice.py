"""The self-service page (SPEC §10) from several loopback addresses: the
caller's own address only, clear / blocked / lifted (the last window still
shown), no other address however asked, 429 past 30 a minute, and
X-Forwarded-For trusted only from proxy_from."""

import pytest

from guardutil import fail_auth
from httputil import post, public, request, start_http_daemon

HIDDEN = {"lifted_by", "lift_reason", "node", "note"}


@pytest.fixture
def d(start_daemon, tmp_path):
    return start_http_daemon(start_daemon, tmp_path,
                             guard={"auth_fail_limit": "3", "ban_durations": "1h 2h"})


def block_by_failures(d, ip):
    c = fail_auth(d.port, 3, source=ip)
    c.close()


def as_json(d, ip, path="/?format=json", **kw):
    r = public(d, path, source=ip, **kw)
    assert r.status == 200, (r.status, r.body)
    assert r.headers["content-type"] == "application/json"
    return r.json()


def test_clear_address(d):
    j = as_json(d, "127.0.0.21")
    assert j == {"address": "127.0.0.21", "prefix": "127.0.0.21/32", "state": "clear",
                 "block": None, "last_block": None}
    t = public(d, "/?format=text", source="127.0.0.21")
    assert t.headers["content-type"].startswith("text/plain")
    assert "Your outbound IP address: 127.0.0.21" in t.text and "not blocked" in t.text
    h = public(d, "/", source="127.0.0.21")
    assert h.headers["content-type"].startswith("text/html")
    assert "127.0.0.21" in h.text and "not blocked" in h.text


def test_blocked_then_lifted_keeps_the_window(d):
    block_by_failures(d, "127.0.0.22")
    j = as_json(d, "127.0.0.22")
    assert j["state"] == "blocked"
    b = j["block"]
    assert b["reason"] == "auth_failures" and b["expires_at"] and b["first_event_at"]
    assert not HIDDEN & set(b) and not HIDDEN & set(j["last_block"])
    assert set(j) == {"address", "prefix", "state", "block", "last_block"}
    t = public(d, "/?format=text", source="127.0.0.22").text
    assert "State: blocked" in t and "failed logins" in t and "Until: " in t
    assert "lifts by itself" in t and "Last block window:" in t
    # never the limits or the counters
    for word in ("limit", "auth_fail", "counter", "3 failed"):
        assert word not in t.lower()

    r = post(d, "/api/v1/unblock", {"ip": "127.0.0.22", "reason": "private: ticket 99"})
    assert r.status == 200
    j = as_json(d, "127.0.0.22")
    assert j["state"] == "clear" and j["block"] is None
    last = j["last_block"]
    assert last["state"] == "lifted" and last["first_event_at"] and last["last_event_at"]
    assert not HIDDEN & set(last)
    for fmt in ("/?format=text", "/", "/?format=json"):
        body = public(d, fmt, source="127.0.0.22").text
        assert "ticket 99" not in body and "desk" not in body
    t = public(d, "/?format=text", source="127.0.0.22").text
    assert "State: not blocked" in t and "Last block window:" in t


def test_html_escapes_and_permanent(d):
    post(d, "/api/v1/block", {"ip": "127.0.0.27", "permanent": True,
                              "reason": "<img src=x onerror=alert(1)>"})
    h = public(d, "/", source="127.0.0.27").text
    assert "blocked permanently" in h and "only our support" in h
    assert "<img" not in h and "onerror" not in h


def test_other_address_in_query_is_ignored(d):
    block_by_failures(d, "127.0.0.22")
    for q in ("/?ip=127.0.0.22&format=json", "/?format=json&address=127.0.0.22",
              "/?format=json&ip=127.0.0.22&for=127.0.0.22"):
        j = as_json(d, "127.0.0.23", q)
        assert j["address"] == "127.0.0.23" and j["state"] == "clear", j


def test_rate_limit_per_address(d):
    for i in range(30):
        assert public(d, "/?format=text", source="127.0.0.24").status == 200, i
    r = public(d, "/?format=text", source="127.0.0.24")
    assert r.status == 429 and r.headers.get("retry-after") == "60"
    # another address is not held up
    assert public(d, "/?format=text", source="127.0.0.25").status == 200


def test_forwarded_for_only_from_proxy_from(d):
    block_by_failures(d, "127.0.0.22")
    xff = {"X-Forwarded-For": "198.51.100.9, 127.0.0.22"}
    # 127.0.0.26 is not in proxy_from (127.0.0.1/32): its header is ignored
    j = as_json(d, "127.0.0.26", headers=xff)
    assert j["address"] == "127.0.0.26" and j["state"] == "clear"
    # 127.0.0.1 is: the last address of the header is the caller
    j = as_json(d, "127.0.0.1", headers=xff)
    assert j["address"] == "127.0.0.22" and j["state"] == "blocked"
    r = public(d, "/?format=json", source="127.0.0.1", headers={"X-Forwarded-For": "junk"})
    assert r.status == 400


def test_only_get_slash(d):
    assert public(d, "/api/v1/status?ip=127.0.0.1", source="127.0.0.28").status == 404
    assert public(d, "/metrics", source="127.0.0.28").status == 404
    r = request(d.public_port, "POST", "/", body=b"", token=None)
    assert r.status == 405
