"""Blocks, offense counts and history survive SIGKILL and a restart: every
block is back in force with its original expiry, history is complete."""

import time

from guardutil import (
    GREETING_554, REPLY_421, fail_auth, greeting_of, now_utc, seconds_between,
    status, ts, wait_expired, wait_until,
)


def block_by_auth_failures(d, n=3):
    c = fail_auth(d.port, n)
    r = c.cmd("NOOP")
    assert r.lines == [REPLY_421], r
    c.close()


def snapshot(d):
    return {
        "local": status(d, "127.0.0.1"),
        "local_history": d.ctl_json("history", "127.0.0.1"),
        "net": status(d, "198.51.100.0/24"),
        "lifted_history": d.ctl_json("history", "203.0.113.9"),
        "list": sorted(d.ctl_json("list")["blocks"], key=lambda b: b["address"]),
    }


def without_live_counters(s):
    s = dict(s)
    s.pop("counters")
    return s


def test_blocks_and_history_survive_sigkill(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "2s 1h",
                            "permanent_after": "5"})
    # 1st automatic block, which expires
    block_by_auth_failures(d)
    wait_expired(d, 1)
    # a lifted manual block and a permanent manual block elsewhere
    assert d.ctl("block", "203.0.113.9", "--for", "1h", "--reason", "x").returncode == 0
    assert d.ctl("unblock", "203.0.113.9", "--reason", "ok now").returncode == 0
    assert d.ctl("block", "198.51.100.0/24", "--permanent").returncode == 0
    # 2nd automatic block: 1h
    block_by_auth_failures(d)
    before = snapshot(d)
    assert before["local"]["state"] == "blocked"
    assert before["local"]["offenses"] == 2
    assert len(before["local_history"]["blocks"]) == 2
    assert before["net"]["state"] == "permanent"
    assert [b["state"] for b in before["lifted_history"]["blocks"]] == ["lifted"]

    d.kill9()
    d.restart()

    # in force again at once for new connections
    assert greeting_of(d.port) == GREETING_554
    assert greeting_of(d.port, source="127.0.0.2").startswith("220 ")
    after = snapshot(d)
    assert without_live_counters(after["local"]) == without_live_counters(before["local"])
    assert after["local"]["block"]["expires_at"] == before["local"]["block"]["expires_at"]
    assert after["local_history"] == before["local_history"]
    assert without_live_counters(after["net"]) == without_live_counters(before["net"])
    assert after["lifted_history"] == before["lifted_history"]
    assert after["lifted_history"]["blocks"][0]["lift_reason"] == "ok now"
    assert after["list"] == before["list"]

    # and again after a graceful restart
    d.restart()
    assert greeting_of(d.port) == GREETING_554
    again = snapshot(d)
    assert again["local_history"] == before["local_history"]
    assert again["list"] == before["list"]

    # the ladder remembers: the 3rd automatic block is 1h again (last value repeats)
    assert d.ctl("unblock", "127.0.0.1", "--reason", "test").returncode == 0
    # (a new wall-clock second, so that this test does not depend on blocks
    # within one second counting apart: test_guard_block checks that)
    sec = int(time.time())
    wait_until(lambda: int(time.time()) > sec, timeout=3, interval=0.02, what="next second")
    block_by_auth_failures(d)
    s = status(d, "127.0.0.1")
    assert s["offenses"] == 3, s
    assert abs(seconds_between(s["block"]["started_at"], s["block"]["expires_at"]) - 3600) <= 2


def test_ladder_survives_sigkill(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "2s",
                            "permanent_after": "2"})
    block_by_auth_failures(d)
    wait_expired(d, 1)
    d.kill9()
    d.restart()
    # the 2nd block after the crash is the permanent one
    block_by_auth_failures(d)
    s = status(d, "127.0.0.1")
    assert s["state"] == "permanent", s
    assert s["offenses"] == 2
    assert s["block"]["expires_at"] is None


def test_block_expiring_while_down_is_expired_after_restart(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "3s"})
    block_by_auth_failures(d)
    s_before = status(d, "127.0.0.1")
    expires = ts(s_before["block"]["expires_at"])
    d.kill9()
    wait_until(lambda: now_utc() > expires, timeout=10, what="the expiry time to pass")
    time.sleep(0.5)
    d.restart()
    assert greeting_of(d.port).startswith("220 ")
    s = wait_until(lambda: (lambda x: x if x["last_block"] and x["last_block"]["state"] == "expired" else None)(
        status(d, "127.0.0.1")), timeout=10, what="last_block expired")
    assert s["state"] == "clear"
    assert s["last_block"]["expires_at"] == s_before["block"]["expires_at"]
    h = d.ctl_json("history", "127.0.0.1")["blocks"]
    assert len(h) == 1 and h[0]["state"] == "expired", h


def test_block_made_just_before_sigkill_survives(start_daemon):
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    assert d.ctl("block", "203.0.113.77", "--permanent").returncode == 0
    block_by_auth_failures(d)
    # the operator was told "done" and history shows the automatic block:
    # no further pause, both records must already be durable
    assert len(d.ctl_json("history", "127.0.0.1")["blocks"]) == 1
    d.kill9()
    d.restart()
    assert greeting_of(d.port) == GREETING_554
    assert status(d, "127.0.0.1")["state"] == "blocked"
    assert status(d, "203.0.113.77")["state"] == "permanent"


def test_quick_successive_blocks_stay_apart_after_restart(start_daemon):
    """Blocks are restored by record, not by time: two automatic blocks made
    a few milliseconds apart are still two offenses after a crash."""
    d = start_daemon(guard={"auth_fail_limit": "1", "ban_durations": "1h 2h",
                            "permanent_after": "3"})
    starts = []
    for _ in range(2):
        block_by_auth_failures(d, n=1)
        starts.append(status(d, "127.0.0.1")["block"]["started_at"])
        assert d.ctl("unblock", "127.0.0.1").returncode == 0
    assert status(d, "127.0.0.1")["offenses"] == 2
    d.kill9()
    d.restart()
    s = status(d, "127.0.0.1")
    assert s["offenses"] == 2, (starts, s)
    block_by_auth_failures(d, n=1)
    s = status(d, "127.0.0.1")
    assert s["state"] == "permanent", (starts, s)
