"""An attacker cycling through 100,000 account names keeps the daemon's
memory flat (issue 14): the account table stops at max_accounts (a small
one here, so that the flat part is most of the run) and forgets the oldest
names that only hold failures, never a lock nor the owner's addresses.

Measured: the daemon's resident memory (VmRSS) after the first 20,000
names and after all 100,000. failure_delay = 0 and a cheap hash (sha512-crypt
with 1000 rounds, the minimum) keep the run short; eight connections from
eight loopback addresses run in parallel."""

import base64
import socket
import threading
import time

from conftest import plain_b64
from smtputil import SANITIZED, T

NAMES = 100_000
WARMUP = 20_000
CAP = 5000
CONNS = 8
SALT = "$6$rounds=1000$flatmemorytest$"


def cheap_hash(password):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: deprecated, present in Debian's 3.11
    return crypt.crypt(password, SALT)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Sprayer:
    """One connection failing AUTH PLAIN for names[lo:hi], one at a time."""

    def __init__(self, port, source):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30 * T,
                                             source_address=(source, 0))
        self.buf = b""
        assert self.reply().startswith(b"220 ")
        self.sock.sendall(b"EHLO spray.test\r\n")
        while not self.reply().startswith(b"250 "):
            pass
        self.errors = []

    def reply(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "closed"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def run(self, lo, hi):
        try:
            for i in range(lo, hi):
                self.sock.sendall(b"AUTH PLAIN " + plain_b64(f"user{i}@spray.example", "x").encode()
                                  + b"\r\n")
                r = self.reply()
                if not r.startswith(b"535 "):
                    self.errors.append(r)
                    return
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))


def spray(d, lo, hi):
    per = (hi - lo + CONNS - 1) // CONNS
    sprayers = [Sprayer(d.port, f"127.0.1.{i + 1}") for i in range(CONNS)]
    threads = [threading.Thread(target=s.run, args=(lo + k * per, min(hi, lo + (k + 1) * per)))
               for k, s in enumerate(sprayers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300 * T)
    for s in sprayers:
        s.sock.close()
        assert not s.errors, s.errors[:3]


def test_100000_account_names_keep_memory_flat(start_daemon):
    users = {"alice@example.test": "alice-secret"}
    d = start_daemon(users={}, guard={"max_accounts": str(CAP), "auth_fail_limit": "1000000",
                                      "account_fail_limit": "3"},
                     log={"level": "info"})
    d.users_path.write_text("".join(f"{u}:{cheap_hash(p)}\n" for u, p in users.items()))
    d.reload()

    t0 = time.monotonic()
    spray(d, 0, WARMUP)
    before = rss_kib(d.proc.pid)
    st = d.ctl_json("stats")
    assert st["accounts_tracked"] == CAP, st
    spray(d, WARMUP, NAMES)
    after = rss_kib(d.proc.pid)
    took = time.monotonic() - t0
    st = d.ctl_json("stats")
    assert st["accounts_tracked"] == CAP, st
    assert st["accounts_evicted"] >= NAMES - CAP, st
    print(f"\nRSS after {WARMUP} names: {before} KiB; after {NAMES}: {after} KiB "
          f"(+{after - before} KiB); account table {st.get('accounts_bytes')} bytes; {took:.1f} s")
    # 80,000 more names after the table is full: no growth beyond allocator
    # noise (not under ASan, whose quarantine keeps freed memory; the
    # table's own count above still holds there)
    assert SANITIZED or after - before < 2048, (before, after)
