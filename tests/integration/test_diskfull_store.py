"""A SQLite write failure (issue 5 item 5): `[store] path` on a tiny tmpfs
that is then filled. A new block (auth failures over a low auth_fail_limit)
cannot be written: it is still enforced from memory (421 to the open
session, 554 to a new connection, `status` says blocked, with its reason
and expiry), the failure is logged (`event=store_error`), and the daemon
keeps serving others.
Skipped where a tmpfs cannot be mounted.
"""

import json

from hostileutil import (
    USER, Client, Closed, fill, good_transaction, mount_tmpfs, plain_b64, umount,
)

SRC = "127.0.0.23"


def test_store_write_failure_block_still_enforced(start_daemon, tmp_path):
    mnt = mount_tmpfs(tmp_path / "storefs", "1m")
    d = None
    try:
        d = start_daemon(store={"path": str(mnt / "portcullis.db")},
                         guard={"auth_fail_limit": "3", "auth_fail_window": "10m"})
        # the store works before the disk fills
        d.ctl("block", "192.0.2.77", "--for", "1h", "--reason", "before full", check=True)
        assert d.ctl_json("status", "192.0.2.77")["state"] == "blocked"

        written = fill(mnt / "filler", leave=0)
        assert written > 0
        start = d.mark()
        with Client(d.port, source=SRC) as c:
            assert c.greeting[0] == 220, c.greeting
            assert c.cmd("EHLO full.example")[0] == 250
            for i in range(3):   # three guesses: the same one again would be a repeat
                code, lines = c.cmd("AUTH PLAIN " + plain_b64(USER, f"wrong-password-{i}"))
                assert code == 535, lines
            try:
                r = c.cmd("NOOP")
                assert r.code == 421 and r.line.startswith("421 4.7.0"), r
            except Closed:
                raise AssertionError("closed without the 421 of SPEC section 3")
        d.wait_log(r"event=block\b.*ip=127\.0\.0\.23", timeout=10, start=start)
        m = d.wait_log(r"^.*event=store_error\b.*$", timeout=15, start=start)
        print(f"[diskfull] store: {m.group(0)}")

        # enforced from memory
        with Client(d.port, source=SRC) as c:
            assert c.greeting[0] == 554, f"blocked address greeted with {c.greeting}"
        # the earlier block too, and everybody else is served
        assert d.ctl_json("status", "192.0.2.77")["state"] == "blocked"
        good_transaction(d.port)
        assert d.running(), d.log()[-3000:]
        # what the support desk sees: blocked, why, and until when
        st = d.ctl_json("status", SRC)
        assert st["state"] == "blocked", json.dumps(st)
        assert (st["block"] and st["block"]["reason"] == "auth_failures"
                and st["block"]["expires_at"] is not None), \
            f"status of a block made while the store fails: {json.dumps(st)}"
    finally:
        if d is not None:
            d.stop()
        umount(mnt)
