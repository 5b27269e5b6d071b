"""What a newcomer stumbles on (issue 11 items 11-16): the demo setup that
`make run` uses leaves the clone clean, portcullisctl's and portcullisd's
command lines agree, and the admin tool's words cannot be misread."""

import os
import shutil
import subprocess

from conftest import BUILD, REPO, T


def run(args, **kw):
    cp = subprocess.run([str(a) for a in args], capture_output=True, timeout=30 * T, **kw)
    return cp.returncode, cp.stdout.decode("utf-8", "replace"), cp.stderr.decode("utf-8", "replace")


# ---- item 11: make run works on a copy of the demo users ------------------

def test_demo_passwd_leaves_tracked_users_alone(tmp_path):
    (tmp_path / "etc").mkdir()
    for name in ("portcullis.conf", "users"):
        shutil.copy(REPO / "etc" / name, tmp_path / "etc" / name)
    tracked = (tmp_path / "etc" / "users").read_bytes()
    # the step `make run` takes before starting the daemon
    rc, out, err = run(["make", "-n", "run"], cwd=REPO)
    assert rc == 0 and "demousers.sh" in out, out + err
    rc, out, err = run([REPO / "scripts" / "demousers.sh"], cwd=tmp_path)
    assert rc == 0, err
    conf = tmp_path / "etc" / "portcullis.conf"
    rc, out, err = run([BUILD / "portcullisctl", "-c", conf, "passwd", "newbie@example.test"],
                       input=b"a-long-password\n", cwd=tmp_path)
    assert rc == 0, err
    assert (tmp_path / "etc" / "users").read_bytes() == tracked, "the tracked etc/users changed"
    copy = (tmp_path / "var" / "users").read_text()
    assert "newbie@example.test:$" in copy and "demo@example.test:" in copy, copy
    # a second run keeps the copy (and its new user)
    rc, out, err = run([REPO / "scripts" / "demousers.sh"], cwd=tmp_path)
    assert rc == 0 and "newbie@example.test" in (tmp_path / "var" / "users").read_text()


# ---- item 12: unblock with nothing in force names what it looked at ------

def test_unblock_nothing_names_address_and_prefix(start_daemon):
    d = start_daemon(guard={"ipv4_prefix": "24"})
    cp = d.ctl("unblock", "10.9.9.9")
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert "10.9.9.9 (prefix 10.9.9.0/24)" in cp.stderr and "not blocked" in cp.stderr, cp.stderr
    cp = d.ctl("unblock", "10.9.0.0/16")
    assert cp.returncode == 1 and "10.9.0.0/16: not blocked" in cp.stderr, cp.stderr


# ---- item 13: --help, and one default configuration for both programs ----

def test_help_exits_0_on_stdout():
    for prog in ("portcullisd", "portcullisctl"):
        for flag in ("--help", "-h"):
            rc, out, err = run([BUILD / prog, flag])
            assert rc == 0, (prog, flag, rc, err)
            assert out.startswith(f"usage: {prog}") and err == "", (prog, flag, out, err)
    # a wrong option is still a usage error, on stderr
    for prog in ("portcullisd", "portcullisctl"):
        rc, out, err = run([BUILD / prog, "--no-such-option"])
        assert rc == 2 and out == "" and "usage:" in err, (prog, rc, out, err)


def test_one_default_config_for_both(tmp_path, tls_files):
    from conftest import Daemon
    d = Daemon(tmp_path / "cfg", tls_files)
    env = dict(os.environ, PORTCULLIS_CONF=str(d.conf_path))
    # -t without -c checks the default file, as portcullisctl reads it
    rc, out, err = run([BUILD / "portcullisd", "-t"], env=env)
    assert rc == 0 and str(d.conf_path) in out, (rc, out, err)
    missing = tmp_path / "nowhere.conf"
    env["PORTCULLIS_CONF"] = str(missing)
    rc1, _, err1 = run([BUILD / "portcullisd", "-t"], env=env)
    rc2, _, err2 = run([BUILD / "portcullisctl", "stats"], env=env)
    assert rc1 == 1 and rc2 == 1 and str(missing) in err1 and str(missing) in err2, (err1, err2)
    # and without the variable both name the same built-in path
    env.pop("PORTCULLIS_CONF")
    _, out1, _ = run([BUILD / "portcullisd", "--help"], env=env)
    _, out2, _ = run([BUILD / "portcullisctl", "--help"], env=env)
    assert "/etc/portcullis/portcullis.conf" in out1 and "/etc/portcullis/portcullis.conf" in out2


# ---- item 15: history says when a block ended, and how -------------------

def history_entries(d, ip):
    """The history text, one entry (first line + details) per block."""
    cp = d.ctl("history", ip, check=True)
    lines = cp.stdout.splitlines()
    assert lines[0].startswith("history of "), cp.stdout
    return [l for l in lines[1:] if not l.startswith(" ")]


def test_history_wording_of_ended_blocks(start_daemon):
    import json
    import time
    d = start_daemon()
    ip = "10.11.0.1"
    # a temporary block lifted early
    d.ctl("block", ip, "--for", "1h", check=True)
    d.ctl("unblock", ip, "--reason", "customer called", check=True)
    # a permanent block lifted
    d.ctl("block", ip, "--permanent", check=True)
    d.ctl("unblock", ip, check=True)
    # a block that ran out
    d.ctl("block", ip, "--for", "1s", check=True)
    deadline = time.monotonic() + 15 * T
    while json.loads(d.ctl("status", ip, json=True, check=True).stdout)["state"] != "clear":
        assert time.monotonic() < deadline, "the 1 s block did not expire"
        time.sleep(0.2)
    hist = json.loads(d.ctl("history", ip, json=True, check=True).stdout)["blocks"]
    assert [b["state"] for b in hist] == ["expired", "lifted", "lifted"], hist
    entries = history_entries(d, ip)
    assert len(entries) == 3, entries
    expired, lifted_perm, lifted_temp = entries
    assert f"ended {hist[0]['expires_at']} when it expired" in expired, expired
    assert f"ended {hist[1]['lifted_at']} when {hist[1]['lifted_by']} lifted it" in lifted_perm
    assert "it was permanent" in lifted_perm and "blocked permanently" not in lifted_perm, lifted_perm
    assert f"ended {hist[2]['lifted_at']} when" in lifted_temp and "customer called" in lifted_temp
    assert f"it was to run until {hist[2]['expires_at']}" in lifted_temp, lifted_temp
    for e in entries:
        assert "ran until" not in e and ", permanent" not in e, e
    # a block in force still reads as one
    d.ctl("block", ip, "--permanent", check=True)
    assert "blocked permanently" in history_entries(d, ip)[0]


# ---- item 16: stats counters that cannot be misread ----------------------

def test_stats_names_made_apart_from_in_force(start_daemon):
    from smtputil import fail_auth
    d = start_daemon(guard={"auth_fail_limit": "3", "ban_durations": "1h"})
    d.ctl("block", "10.12.0.1", "--for", "1h", check=True)
    d.ctl("block", "10.12.0.2", "--permanent", check=True)
    c = fail_auth(d.port, 3)          # 127.0.0.1 blocked for auth_failures
    c.close()
    st = d.ctl_json("stats")
    assert st["blocks_made_since_start_manual"] == 2, st
    assert st["blocks_made_since_start_auth_failures"] == 1, st
    assert st["blocks_made_since_start_unauth_attempts"] == 0, st
    assert st["blocks_made_since_start_conn_rate"] == 0, st
    assert st["blocks_made_since_start"] == 3, st
    assert (st["blocks_in_force"], st["blocks_in_force_temporary"],
            st["blocks_in_force_permanent"]) == (3, 2, 1), st
    # the misreadable name is gone; the old in-force names stay as aliases
    assert "blocks" not in st, st
    assert (st["active_blocks"], st["permanent_blocks"]) == (3, 1), st
    # lifting changes what is in force, not what was made
    d.ctl("unblock", "10.12.0.2", check=True)
    st = d.ctl_json("stats")
    assert st["blocks_made_since_start"] == 3 and st["blocks_in_force"] == 2, st
    assert st["blocks_in_force_permanent"] == 0, st
    text = d.ctl("stats", check=True).stdout
    assert any(l.split() == ["blocks_made_since_start_manual", "2"] for l in text.splitlines()), text
    assert any(l.split() == ["blocks_in_force", "2"] for l in text.splitlines()), text
