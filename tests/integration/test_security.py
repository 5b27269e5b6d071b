"""docs/SECURITY.md's claims, each checked against the real daemon: no open
relay, the privilege drop, and the modes of what the daemon creates."""
import os
import pwd
import shutil
import socket
import stat
import tempfile
import time

import pytest


def read_replies(sock, n, timeout=10):
    """Reads until n final reply lines (`ddd ` lines) have come."""
    sock.settimeout(timeout)
    buf = b""
    finals = []
    deadline = time.monotonic() + timeout
    while len(finals) < n and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\r\n")
        finals += [l.decode() for l in lines if len(l) >= 4 and l[3:4] == b" "]
    return finals


def test_no_open_relay_for_unauthenticated_clients(daemon):
    """A whole transaction pipelined without AUTH: MAIL is 530, RCPT and
    DATA are sequence errors, the message text is read as (bad) commands,
    and nothing reaches the Maildir."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        assert read_replies(s, 1)[0].startswith("220 ")
        s.sendall(b"EHLO relay.test\r\n")
        assert read_replies(s, 1)[0].startswith("250 ")
        s.sendall(b"MAIL FROM:<spammer@example.org>\r\n"
                  b"RCPT TO:<victim@example.net>\r\n"
                  b"DATA\r\n")
        mail, rcpt, data = read_replies(s, 3)
        assert mail.startswith("530 5.7.0"), mail
        assert rcpt.startswith("503 5.5.1"), rcpt
        assert data.startswith("503 5.5.1"), data
        s.sendall(b"Subject: relay me\r\n.\r\nQUIT\r\n")
        rest = read_replies(s, 3)
        assert rest[-1].startswith("221 "), rest
    time.sleep(0.2)
    assert daemon.messages() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop needs root")
def test_privilege_drop_after_bind(start_daemon):
    """Started as root with [server] user = nobody: the daemon runs as
    nobody, still serves, and what it creates is nobody's."""
    nobody = pwd.getpwnam("nobody")
    # pytest's own tmp folders are root's 0700: give nobody a folder of its own
    base = tempfile.mkdtemp(prefix="portcullis-drop-")
    try:
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        d = start_daemon(server={"user": "nobody"},
                         store={"path": f"{base}/var/portcullis.db"},
                         delivery={"maildir": f"{base}/mail"},
                         control={"socket": f"{base}/portcullis.sock"})
        with open(f"/proc/{d.proc.pid}/status") as f:
            ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid", "Gid"))}
        assert ids["Uid"] == [str(nobody.pw_uid)] * 4, ids
        assert ids["Gid"] == [str(nobody.pw_gid)] * 4, ids
        with d.smtp() as s:
            s.ehlo()
            s.login("alice@example.test", "alice-secret")
            s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: x\r\n\r\nhi\r\n")
        new = os.listdir(f"{base}/mail/new")
        assert len(new) == 1
        st = os.stat(f"{base}/mail/new/{new[0]}")
        assert st.st_uid == nobody.pw_uid and stat.S_IMODE(st.st_mode) == 0o600
        db = os.stat(f"{base}/var/portcullis.db")
        assert db.st_uid == nobody.pw_uid and stat.S_IMODE(db.st_mode) == 0o600
        # root may still use the control socket (SO_PEERCRED: root or the daemon's uid)
        assert d.ctl_json("status", "192.0.2.1")["state"] == "clear"
        d.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_modes_of_what_the_daemon_creates(daemon):
    with daemon.smtp() as s:
        s.ehlo()
        s.login("alice@example.test", "alice-secret")
        s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: x\r\n\r\nhi\r\n")
    for sub in ("tmp", "new", "cur"):
        assert stat.S_IMODE(os.stat(daemon.maildir / sub).st_mode) == 0o700, sub
    for name in os.listdir(daemon.maildir / "new"):
        assert stat.S_IMODE(os.stat(daemon.maildir / "new" / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(daemon.dir / "var" / "portcullis.db").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(daemon.dir / "var" / "portcullis.sock").st_mode) == 0o600
