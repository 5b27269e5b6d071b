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
from pathlib import Path

from smtputil import T, free_port, wait_until

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCAT = shutil.which("postcat") or "/usr/sbin/postcat"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def have_postfix():
    return os.path.exists(POSTFIX) and os.geteuid() == 0


def have_dovecot():
    return os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/lmtp") \
        and os.geteuid() == 0


def peer_dir(tmp, name):
    """A folder for a peer that drops privileges: pytest's own are 0700 under
    /tmp/pytest-of-root, which every new pytest run makes 0700 again, so the
    peer gets a fresh 0711 folder in /tmp, linked from the test's folder."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix=f"portcullis-{name}-", dir="/tmp"))
    os.chmod(d, 0o711)
    link = Path(tmp) / name
    if not link.exists():
        link.symlink_to(d)
    return d


def remove_peer_dir(d):
    if str(d).startswith("/tmp/portcullis-"):
        shutil.rmtree(d, ignore_errors=True)


def port_open(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_port(port, timeout=20):
    try:
        return wait_until(lambda: port_open(port), timeout=timeout, what=f"port {port}")
    except AssertionError:
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
        self.dir = peer_dir(tmp, "postfix")
        self.port = free_port()
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
        wait_until(lambda: not port_open(self.port), timeout=20, interval=0.1,
                   what="Postfix to stop listening")

    def cleanup(self):
        self.stop()
        remove_peer_dir(self.dir)

    def log(self):
        try:
            return (self.dir / "maillog").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10):
        pat = re.compile(regex, re.M)
        try:
            return wait_until(lambda: pat.search(self.log()), timeout=timeout, interval=0.1,
                              what=f"/{regex}/ in Postfix's log")
        except AssertionError as e:
            raise AssertionError(f"{e}:\n{self.log()[-4000:]}") from None

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


# --------------------------------------------------------------------------
# Dovecot

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = portcullis-test-{port}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = {mechs}
auth_failure_delay = {failure_delay}
auth_verbose = yes
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
mail_uid = dovecot
mail_gid = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/home/%u allow_all_users=yes
}}
service auth {{
  unix_listener {d}/auth-client {{
    mode = 0666
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener {d}/lmtp {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    """A private Dovecot: auth service at .auth_socket, LMTP at .lmtp_port
    and .lmtp_socket, users in a passwd-file, Maildirs under .dir/mail."""

    def __init__(self, tmp, users, mechs="plain login", failure_delay="2s"):
        self.dir = peer_dir(tmp, "dovecot")
        self.lmtp_port = free_port()
        for sub in ("run", "state", "mail", "home"):
            (self.dir / sub).mkdir(exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.dir / sub, _uid("dovecot"), _gid("dovecot"))
        (self.dir / "passwd").write_text(
            "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users.items()))
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(DOVECOT_CONF.format(d=self.dir, port=self.lmtp_port, mechs=mechs,
                                                 failure_delay=failure_delay))
        self.auth_socket = self.dir / "auth-client"
        self.lmtp_socket = self.dir / "lmtp"
        self.proc = None

    def start(self):
        logf = open(self.dir / "stdout.log", "ab")
        try:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                         stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            logf.close()
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("Dovecot exited:\n" + self.log())
            return self.auth_socket.exists() and port_open(self.lmtp_port)
        wait_until(up, timeout=20, what="Dovecot's sockets")
        return self

    def kill(self):
        """SIGKILL to Dovecot's whole process group: gone at once."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        # its sockets stay behind as files; a new start replaces them

    stop = kill

    def cleanup(self):
        self.kill()
        remove_peer_dir(self.dir)

    def log(self):
        out = ""
        for name in ("dovecot.log", "stdout.log"):
            try:
                out += (self.dir / name).read_text(errors="replace")
            except FileNotFoundError:
                pass
        return out

    def mailbox(self, user):
        """The files of user's INBOX (new/ and cur/), oldest first."""
        base = self.dir / "mail" / user
        files = [p for sub in ("new", "cur") if (base / sub).is_dir()
                 for p in (base / sub).iterdir()]
        files.sort(key=lambda p: p.stat().st_mtime_ns)
        return files


# --------------------------------------------------------------------------
# FakeHop: a scripted next hop, for fault injection only


class FakeHop:
    """An SMTP (or LMTP) server on a loopback port, in its own thread, that
    answers as `script` says. Steps: greeting, ehlo, starttls, xforward,
    mail, rcpt, data, dot (the reply after the final dot), rset. A step's
    action is a reply line ("451 4.3.2 later"), "silent" (never answer),
    or "close" (hang up); "after_dot": "close" hangs up right after the
    reply to the dot (as a next hop whose idle timeout ran out). "drop_in_data": hang up after this many octets of
    the message. Without a script entry a step gets a friendly 2xx/354.

    .sessions: one dict per connection: commands seen, tls, messages (the
    data of each transaction whose dot got a 2xx from us)."""

    DEFAULTS = {"greeting": "220 fake.test ESMTP", "mail": "250 2.1.0 Ok",
                "rcpt": "250 2.1.5 Ok", "data": "354 go ahead", "dot": "250 2.0.0 Ok: queued as FAKE1",
                "rset": "250 2.0.0 Ok", "xforward": "250 2.0.0 Ok", "starttls": "220 2.0.0 Ready",
                "quit": "221 2.0.0 Bye", "noop": "250 2.0.0 Ok"}

    def __init__(self, script=None, starttls=False, cert=None, key=None, xforward=True,
                 drop_in_data=None, pipelining=True):
        self.script = dict(script or {})
        self.starttls = starttls
        self.xforward = xforward
        self.pipelining = pipelining
        self.drop_in_data = drop_in_data
        self.port = free_port()
        self.sessions = []
        self.ssl = None
        if cert is not None:
            self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "fake hop did not start"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    def close(self):
        def stop():
            self.server.close()
            # connections still talking (or silent on purpose) end first
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)

    def messages(self):
        return [m for s in self.sessions for m in s["messages"]]

    async def _client(self, reader, writer):
        sess = {"commands": [], "tls": False, "messages": []}
        self.sessions.append(sess)
        try:
            await self._dialogue(reader, writer, sess)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _say(self, writer, step, default=None):
        """Answers `step`; False when the script says to stop talking."""
        action = self.script.get(step, default or self.DEFAULTS.get(step, "250 2.0.0 Ok"))
        if action == "close":
            writer.close()
            return False
        if action == "silent":
            await asyncio.sleep(3600)
            return False
        writer.write(action.encode() + b"\r\n")
        await writer.drain()
        return True

    async def _dialogue(self, reader, writer, sess):
        if not await self._say(writer, "greeting"):
            return
        while True:
            line = await reader.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            sess["commands"].append(cmd)
            # what had arrived with it, unread: a pipelined group
            sess.setdefault("buffered", []).append(len(reader._buffer))
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                if "ehlo" in self.script:
                    if not await self._say(writer, "ehlo"):
                        return
                    continue
                ext = ["fake.test", "SIZE 30000000", "8BITMIME", "ENHANCEDSTATUSCODES"]
                if self.pipelining:
                    ext.append("PIPELINING")
                if self.starttls and not sess["tls"]:
                    ext.append("STARTTLS")
                if self.xforward:
                    ext.append("XFORWARD NAME ADDR PROTO HELO PORT IDENT")
                writer.write("".join(f"250{'-' if i < len(ext) - 1 else ' '}{e}\r\n"
                                     for i, e in enumerate(ext)).encode())
                await writer.drain()
            elif verb == "STARTTLS":
                if not await self._say(writer, "starttls"):
                    return
                await writer.start_tls(self.ssl)
                sess["tls"] = True
            elif verb == "DATA":
                if not await self._say(writer, "data"):
                    return
                if not self.script.get("data", "354").startswith("354"):
                    continue
                data = b""
                while True:
                    l = await reader.readline()
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    data += l
                    if self.drop_in_data is not None and len(data) >= self.drop_in_data:
                        writer.transport.abort()
                        return
                ok = self.script.get("dot", "250").startswith("2")
                if ok:
                    sess["messages"].append(data)
                if not await self._say(writer, "dot"):
                    return
                if self.script.get("after_dot") == "close":
                    writer.close()
                    return
            elif verb == "QUIT":
                await self._say(writer, "quit")
                return
            else:
                step = {"MAIL": "mail", "RCPT": "rcpt", "RSET": "rset", "XFORWARD": "xforward",
                        "NOOP": "noop"}.get(verb, "noop")
                if not await self._say(writer, step):
                    return


# --------------------------------------------------------------------------
# FakeDovecot: a scripted auth-client service, for fault injection only


class FakeDovecot:
    """Dovecot's auth-client protocol on a unix socket, answering every AUTH
    with `answer` (a function of the user name returning the reply's words
    after the id, e.g. "OK\\tuser=a\\tnologin" or "FAIL\\ttemp"; bytes: a raw
    line to send instead; None: never answer). .requests: the AUTH lines
    seen; .connections: how many connections were made."""

    def __init__(self, path, answer, mechs=("PLAIN", "LOGIN")):
        self.path = str(path)
        self.answer = answer
        self.mechs = mechs
        self.requests = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "fake Dovecot did not start"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_unix_server(self._client, self.path))
        os.chmod(self.path, 0o666)
        self.ready.set()
        self.loop.run_forever()

    def close(self):
        def stop():
            self.server.close()
            # connections still talking (or silent on purpose) end first
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _client(self, reader, writer):
        import base64
        self.connections += 1
        hello = "VERSION\t1\t2\n" + "".join(f"MECH\t{m}\tplaintext\n" for m in self.mechs) \
            + "SPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n"
        writer.write(hello.encode())
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                f = line.decode().rstrip("\n").split("\t")
                if f[0] != "AUTH":
                    continue
                self.requests.append(f)
                resp = [x[5:] for x in f if x.startswith("resp=")]
                user = base64.b64decode(resp[0]).split(b"\0")[1].decode() if resp else ""
                reply = self.answer(user)
                if reply is None:
                    continue
                if isinstance(reply, bytes):        # a raw line, as is
                    writer.write(reply)
                    await writer.drain()
                    continue
                writer.write(f"{reply.split(chr(9))[0]}\t{f[1]}\t".encode()
                             + "\t".join(reply.split("\t")[1:]).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
