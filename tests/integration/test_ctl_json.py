"""portcullisctl --json: the shapes of SPEC §5, unblock with a recorded
reason, history newest first, list and its filters, manual blocks, stats."""

import json

from guardutil import (
    GREETING_554, REPLY_421, check_block_shape, check_status_shape,
    fail_auth, greeting_of, now_utc, seconds_between, status, ts,
)


def block_by_auth_failures(d, n=3):
    c = fail_auth(d.port, n)
    r = c.cmd("NOOP")
    assert r.lines == [REPLY_421], r
    c.close()


def test_status_clear_shape_and_counters(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "10", "unauth_limit": "10"})
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["address"] == "127.0.0.1"
    assert s["prefix"] == "127.0.0.1/32"
    assert s["state"] == "clear"
    assert s["block"] is None and s["last_block"] is None
    assert s["offenses"] == 0
    assert s["counters"] == {"auth_failures": 0, "unauth_attempts": 0,
                             "connections": 0, "concurrent": 0}
    c = fail_auth(d.port, 2)
    assert c.cmd("MAIL FROM:<x@example.org>").code == 530
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["counters"]["auth_failures"] == 2
    assert s["counters"]["unauth_attempts"] == 1
    assert s["counters"]["connections"] == 1
    assert s["counters"]["concurrent"] == 1
    c.quit()
    # an explicit prefix is accepted too
    s = status(d, "127.0.0.1/32")
    assert s["prefix"] == "127.0.0.1/32"
    # text output works as well and exits 0
    cp = d.ctl("status", "127.0.0.1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip()


def test_status_of_automatic_block_has_every_block_field(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "10m"})
    before = now_utc()
    block_by_auth_failures(d)
    after = now_utc()
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["state"] == "blocked"
    assert s["offenses"] == 1
    b = s["block"]
    check_block_shape(b)
    assert b["address"] == "127.0.0.1/32"
    assert b["state"] == "blocked"
    assert b["reason"] == "auth_failures"
    assert b["events"] == 3
    assert b["lifted_at"] is None and b["lifted_by"] is None and b["lift_reason"] is None
    assert isinstance(b["node"], str) and b["node"]
    for k in ("started_at", "first_event_at", "last_event_at"):
        assert b[k] is not None, k
        assert before.timestamp() - 2 <= ts(b[k]).timestamp() <= after.timestamp() + 2, (k, b)
    assert ts(b["first_event_at"]) <= ts(b["last_event_at"]) <= ts(b["started_at"])
    assert abs(seconds_between(b["started_at"], b["expires_at"]) - 600) <= 2
    # the block in force is also the newest block
    assert s["last_block"] == b
    # counters start afresh at a block
    assert s["counters"]["auth_failures"] == 0


def test_unblock_records_reason_and_status_keeps_last_block(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "10m"})
    block_by_auth_failures(d)
    blocked = status(d, "127.0.0.1")["block"]
    cp = d.ctl("unblock", "127.0.0.1", "--reason", "customer fixed")
    assert cp.returncode == 0, cp.stderr
    assert greeting_of(d.port).startswith("220 ")
    s = status(d, "127.0.0.1")
    check_status_shape(s)
    assert s["state"] == "clear"
    assert s["block"] is None
    lb = s["last_block"]
    check_block_shape(lb)
    assert lb["state"] == "lifted"
    assert lb["lift_reason"] == "customer fixed"
    assert isinstance(lb["lifted_by"], str) and lb["lifted_by"]
    assert ts(lb["lifted_at"]) >= ts(lb["started_at"])
    # the same record, lifted: the trigger window is still there
    for k in ("address", "reason", "started_at", "expires_at", "first_event_at",
              "last_event_at", "events", "node"):
        assert lb[k] == blocked[k], (k, lb, blocked)
    # the automatic block counted as an offense; lifting does not erase that
    assert s["offenses"] == 1
    h = d.ctl_json("history", "127.0.0.1")
    assert set(h) == {"prefix", "blocks"}
    assert h["prefix"] == "127.0.0.1/32"
    assert h["blocks"] == [lb]


def test_history_newest_first(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "10m"})
    assert d.ctl("block", "127.0.0.1", "--for", "1h", "--reason", "first").returncode == 0
    assert d.ctl("unblock", "127.0.0.1", "--reason", "one").returncode == 0
    block_by_auth_failures(d)
    assert d.ctl("unblock", "127.0.0.1", "--reason", "two").returncode == 0
    assert d.ctl("block", "127.0.0.1", "--permanent", "--reason", "third").returncode == 0
    h = d.ctl_json("history", "127.0.0.1")
    assert h["prefix"] == "127.0.0.1/32"
    blocks = h["blocks"]
    for b in blocks:
        check_block_shape(b)
    assert [(b["reason"], b["state"], b["lift_reason"]) for b in blocks] == [
        ("manual", "permanent", None),
        ("auth_failures", "lifted", "two"),
        ("manual", "lifted", "one"),
    ], blocks
    starts = [ts(b["started_at"]) for b in blocks]
    assert starts == sorted(starts, reverse=True)
    # another address has no history
    assert d.ctl_json("history", "203.0.113.200")["blocks"] == []
    # text output exits 0
    assert d.ctl("history", "127.0.0.1").returncode == 0


def test_manual_blocks_list_and_filters(start_daemon):
    d = start_daemon()
    assert d.ctl_json("list") == {"blocks": []}
    cp = d.ctl("block", "203.0.113.9", "--for", "1h", "--reason", "x")
    assert cp.returncode == 0, cp.stderr
    cp = d.ctl("block", "198.51.100.0/24", "--permanent")
    assert cp.returncode == 0, cp.stderr

    s = status(d, "203.0.113.9")
    check_status_shape(s)
    assert s["prefix"] == "203.0.113.9/32"
    assert s["state"] == "blocked"
    assert s["block"]["reason"] == "manual"
    assert s["block"]["address"] == "203.0.113.9/32"
    assert abs(seconds_between(s["block"]["started_at"], s["block"]["expires_at"]) - 3600) <= 2
    assert s["offenses"] == 0, "manual blocks do not count toward the ladder"

    s = status(d, "198.51.100.0/24")
    check_status_shape(s)
    assert s["prefix"] == "198.51.100.0/24"
    assert s["state"] == "permanent"
    assert s["block"]["expires_at"] is None
    assert s["block"]["address"] == "198.51.100.0/24"
    # an address inside the blocked /24 is blocked by it
    s = status(d, "198.51.100.77")
    assert s["prefix"] == "198.51.100.77/32"
    assert s["state"] == "permanent", s
    assert s["block"]["address"] == "198.51.100.0/24"

    everything = d.ctl_json("list")
    assert set(everything) == {"blocks"}
    for b in everything["blocks"]:
        check_block_shape(b)
    assert sorted(b["address"] for b in everything["blocks"]) == ["198.51.100.0/24", "203.0.113.9/32"]
    perm = d.ctl_json("list", "--permanent")["blocks"]
    assert [b["address"] for b in perm] == ["198.51.100.0/24"]
    assert perm[0]["state"] == "permanent"
    temp = d.ctl_json("list", "--temporary")["blocks"]
    assert [b["address"] for b in temp] == ["203.0.113.9/32"]
    assert temp[0]["state"] == "blocked"
    assert d.ctl("list").returncode == 0

    assert d.ctl("unblock", "198.51.100.0/24").returncode == 0
    assert [b["address"] for b in d.ctl_json("list")["blocks"]] == ["203.0.113.9/32"]
    assert d.ctl_json("list", "--permanent")["blocks"] == []
    assert status(d, "198.51.100.77")["state"] == "clear"


def test_manual_block_of_loopback_rejects_and_does_not_count(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "20s 40s"})
    assert d.ctl("block", "127.0.0.1", "--for", "1h").returncode == 0
    assert greeting_of(d.port) == GREETING_554
    assert d.ctl("unblock", "127.0.0.1").returncode == 0
    assert greeting_of(d.port).startswith("220 ")
    block_by_auth_failures(d)
    s = status(d, "127.0.0.1")
    assert s["offenses"] == 1, s
    # the first automatic block: ban_durations[0], whatever manual blocks came before
    assert abs(seconds_between(s["block"]["started_at"], s["block"]["expires_at"]) - 20) <= 1.5


def test_manual_block_replaces_block_in_force(start_daemon):
    d = start_daemon()
    assert d.ctl("block", "203.0.113.10", "--for", "1h").returncode == 0
    assert d.ctl("block", "203.0.113.10", "--permanent").returncode == 0
    s = status(d, "203.0.113.10")
    assert s["state"] == "permanent"
    assert len(d.ctl_json("list")["blocks"]) == 1
    assert d.ctl("unblock", "203.0.113.10").returncode == 0
    assert status(d, "203.0.113.10")["state"] == "clear"
    assert d.ctl_json("list")["blocks"] == []


def test_stats_json_is_an_object(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    block_by_auth_failures(d)
    assert greeting_of(d.port) == GREETING_554
    cp = d.ctl("stats", json=True)
    assert cp.returncode == 0, cp.stderr
    st = json.loads(cp.stdout)
    assert isinstance(st, dict) and st
    text = d.ctl("stats")
    assert text.returncode == 0 and text.stdout.strip()


def test_ipv6_status_is_per_prefix(start_daemon):
    d = start_daemon()
    s = status(d, "2001:db8:1:2:3:4:5:6")
    check_status_shape(s)
    assert s["address"] == "2001:db8:1:2:3:4:5:6"
    assert s["prefix"] == "2001:db8:1:2::/64"
    assert d.ctl("block", "2001:db8:1:2::99", "--for", "1h").returncode == 0
    s = status(d, "2001:db8:1:2:ffff::1")
    assert s["state"] == "blocked"
    assert s["block"]["address"] == "2001:db8:1:2::/64"
    assert status(d, "2001:db8:1:3::1")["state"] == "clear"
