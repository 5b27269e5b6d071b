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
