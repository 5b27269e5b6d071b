"""Memory per session stays bounded whatever the message size (SPEC §7):
four concurrent 20 MB messages, in Maildir mode and relayed to a real
Postfix; the daemon's peak RSS (VmHWM) grows by less than 32 MB over a
warmed-up baseline, and every message arrives byte-exact."""

import hashlib
import os
import threading

import pytest

from conftest import SANITIZED, Delivered, queue_id
from mtautil import Postfix, have_postfix

MB = 1024 * 1024
N = 4
SIZE = 20 * MB
LIMIT = 32 * MB

pytestmark = pytest.mark.skipif(SANITIZED, reason="ASan's own memory use hides the figure")


def message(i, size):
    """A message of about `size` octets: 78-octet lines, some starting with
    a dot, distinct per i."""
    head = (f"From: alice@example.test\r\nTo: bob@example.test\r\n"
            f"Subject: big {i}\r\n\r\n").encode()
    seed = hashlib.sha256(str(i).encode()).hexdigest().encode()
    lines = []
    n = 0
    k = 0
    while n < size:
        body = (seed + b"%08d" % k) * 2
        line = (b"." if k % 7 == 0 else b"") + body[:74] + b"\r\n"
        lines.append(line)
        n += len(line)
        k += 1
    return head + b"".join(lines)


def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def send_all(d, msgs):
    ids, errors = [None] * len(msgs), []

    def one(i):
        try:
            s = d.authed()
            s.mail("alice@example.test")
            s.rcpt("bob@example.test")
            code, text = s.data(msgs[i])
            assert code == 250, (code, text)
            ids[i] = queue_id(text)
            s.quit()
        except Exception as e:  # reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(msgs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return ids


def measure(d, msgs):
    # warm up: one message of each size class, so the baseline includes
    # the allocator's and TLS's steady state
    send_all(d, [message(99, 1 * MB)])
    base = hwm(d.proc.pid)
    ids = send_all(d, msgs)
    grew = hwm(d.proc.pid) - base
    print(f"peak RSS growth for {N} x {SIZE // MB} MB: {grew / MB:.1f} MB")
    assert grew < LIMIT, f"RSS grew by {grew / MB:.1f} MB"
    return ids


def test_maildir_memory_bounded(start_daemon):
    d = start_daemon()
    msgs = [message(i, SIZE) for i in range(N)]
    ids = measure(d, msgs)
    files = d.message_files()
    by_id = {}
    for f in files:
        m = Delivered(f.read_bytes())
        for i, qid in enumerate(ids):
            if f"id {qid}" in m.received:
                by_id[i] = m
    assert len(by_id) == N + 0, (len(files), ids)
    for i in range(N):
        assert hashlib.sha256(by_id[i].body).digest() == \
            hashlib.sha256(msgs[i].replace(b"\r\n", b"\n")).digest(), i


@pytest.mark.skipif(not have_postfix(), reason="needs postfix and root")
def test_relay_memory_bounded(start_daemon, tmp_path):
    pf = Postfix(tmp_path).start()
    try:
        d = start_daemon(delivery={"mode": "relay", "relay": f"smtp://127.0.0.1:{pf.port}",
                                   "relay_tls": "none"})
        msgs = [message(i, SIZE) for i in range(N)]
        ids = measure(d, msgs)
        qids = pf.queue_ids()
        assert len(qids) == N + 1          # and the warm-up one
        want = {hashlib.sha256(m.replace(b"\r\n", b"\n")).digest() for m in msgs}
        got = set()
        for q in qids:
            _, _, raw = pf.message(q)
            # drop Postfix's Received: and ours
            lines = raw.split(b"\n")
            i, seen = 0, 0
            while seen < 2:
                assert lines[i].startswith(b"Received: "), raw[:400]
                i += 1
                while lines[i][:1] in (b" ", b"\t"):
                    i += 1
                seen += 1
            got.add(hashlib.sha256(b"\n".join(lines[i:])).digest())
        assert want <= got
        assert all(ids)
    finally:
        pf.cleanup()
