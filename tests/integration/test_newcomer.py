"""What a newcomer stumbles on (issue 11 items 11-16): the demo setup that
`make run` uses leaves the clone clean, portcullisctl's and portcullisd's
command lines agree, and the admin tool's words cannot be misread."""

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
