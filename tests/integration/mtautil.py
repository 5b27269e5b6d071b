"""Real next hops and auth services for the relay and Dovecot tests, each a
private instance inside the test's temporary folder on loopback:

  Postfix   its own config_directory, queue_directory and maillog_file; an
            smtpd on a loopback port that trusts 127.0.0.0/8 for XFORWARD;
            every message is put on hold, so it stays in the queue where
            the test reads it with postcat (envelope and content)
  Dovecot   `dovecot -F -c FILE` with base_dir in the folder, a passwd-file
            for users and passwords, the auth-client listener as a unix
            socket, LMTP on a loopback port, Maildirs in the folder

and, for fault injection only, FakeHop: a scripted SMTP/LMTP server (one
thread, asyncio) that answers each step as the test says, goes silent,
drops the connection mid-DATA, offers STARTTLS or not.

Both daemons drop privileges to their own users (postfix, dovecot), so the
folders they use are made reachable for them (the tests run as root)."""

import asyncio
import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

from smtputil import T, free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCAT = shutil.which("postcat") or "/usr/sbin/postcat"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def have_postfix():
    return os.path.exists(POSTFIX) and os.geteuid() == 0


def have_dovecot():
    return os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/lmtp") \
        and os.geteuid() == 0


def open_path(p):
    """Let the daemons' own users walk down to p (pytest makes 0700 folders)."""
    p = Path(p).resolve()
    for d in [p] + list(p.parents):
        if str(d) in ("/", "/tmp"):
            break
        try:
            os.chmod(d, os.stat(d).st_mode | 0o711)
        except OSError:
            pass


def wait_port(port, timeout=20):
    import socket
    deadline = time.monotonic() + timeout * T
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# Postfix

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test.example
mydomain = test.example
myorigin = test.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_authorized_xforward_hosts = 127.0.0.0/8
smtpd_peername_lookup = no
smtpd_client_restrictions = check_client_access static:HOLD
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_recipient_access texthash:{d}/rcpt_access, permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
smtp_dns_support_level = disabled
biff = no
message_size_limit = 52428800
smtpd_banner = $myhostname ESMTP
local_header_rewrite_clients =
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
"""


class Postfix:
    """A private Postfix: start(), stop(), queue(), message(id), log()."""

    def __init__(self, tmp, refuse=()):
        self.dir = Path(tmp) / "postfix"
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        open_path(self.dir)
        (self.dir / "queue").mkdir(exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        os.chown(self.dir / "data", _uid("postfix"), _gid("postfix"))
        (self.dir / "main.cf").write_text(MAIN_CF.format(d=self.dir))
        (self.dir / "master.cf").write_text(MASTER_CF.format(port=self.port))
        (self.dir / "rcpt_access").write_text(
            "".join(f"{r} 550 5.1.1 No such user here\n" for r in refuse))
        self.env = dict(os.environ, MAIL_CONFIG=str(self.dir))

    def _postfix(self, *args, check=True):
        return subprocess.run([POSTFIX, "-c", str(self.dir)] + list(args), env=self.env,
                              capture_output=True, text=True, timeout=60 * T, check=check)

    def start(self):
        self._postfix("start")
        assert wait_port(self.port), "Postfix did not listen:\n" + self.log()
        return self

    def stop(self):
        self._postfix("stop", check=False)
        # postfix stop returns before master is gone: wait for the port to close
        deadline = time.monotonic() + 20 * T
        import socket
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                time.sleep(0.1)
            except OSError:
                return

    def log(self):
        try:
            return (self.dir / "maillog").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10):
        pat = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout * T
        while time.monotonic() < deadline:
            m = pat.search(self.log())
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError(f"no /{regex}/ in Postfix's log:\n{self.log()[-4000:]}")

    def queue_ids(self):
        """The ids of the messages in the queue (all held)."""
        out = subprocess.run([POSTQUEUE, "-c", str(self.dir), "-j"], env=self.env,
                             capture_output=True, text=True, timeout=30 * T)
        import json
        return [json.loads(l)["queue_id"] for l in out.stdout.splitlines() if l.strip()]

    def attributes(self, qid):
        """The named attributes of a queued message (XFORWARD's are log_*)."""
        out = subprocess.run([POSTCAT, "-c", str(self.dir), "-e", "-q", qid], env=self.env,
                             capture_output=True, text=True, timeout=30 * T, check=True).stdout
        return dict(re.findall(r"^named_attribute: ([^=]+)=(.*)$", out, re.M))

    def message(self, qid):
        """(sender, [recipients], content bytes) of a queued message."""
        env = subprocess.run([POSTCAT, "-c", str(self.dir), "-e", "-q", qid], env=self.env,
                             capture_output=True, timeout=30 * T, check=True).stdout
        body = subprocess.run([POSTCAT, "-c", str(self.dir), "-bh", "-q", qid],
                              env=self.env, capture_output=True, timeout=30 * T,
                              check=True).stdout
        text = env.decode("utf-8", "replace")
        sender = re.search(r"^sender: (.*)$", text, re.M).group(1)
        rcpts = re.findall(r"^recipient: (.*)$", text, re.M)
        return sender, rcpts, body


def _uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def _gid(name):
    import grp
    return grp.getgrnam(name).gr_gid
