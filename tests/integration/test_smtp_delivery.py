"""MAIL/RCPT/DATA and the Maildir file: byte-exact content, headers, limits,
pipelining, SMTP smuggling, big messages, many concurrent sessions."""

import datetime
import email.utils
import hashlib
import random
import re
import threading
import time

import pytest

from conftest import (CLIENT_NAME, HOSTNAME, T, Delivered, queue_id, wait_until)

SIZE_552 = (552, b"5.3.4 Message size exceeds fixed maximum message size")

DOT_MESSAGE = (
    "From: Alice <alice@example.test>\r\n"
    "To: Bob <bob@example.test>\r\n"
    "Subject: dots and 8-bit\r\n"
    "Message-ID: <dots.1@example.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Grüße aus Köln — ½ € ✓ 日本語\r\n"
    ".leading dot\r\n"
    "..two leading dots\r\n"
    ".\r\n"
    "..\r\n"
    "...\r\n"
    " . space dot\r\n"
    "\r\n"
    "\tlast line ü\r\n"
).encode("utf-8")


def lf(b):
    return b.replace(b"\r\n", b"\n")


def send(s, frm, rcpts, msg, mail_opts=()):
    """MAIL/RCPT/DATA with smtplib (it dot-stuffs); returns the queue id."""
    code, resp = s.mail(frm, list(mail_opts))
    assert code == 250, (code, resp)
    for r in rcpts:
        code, resp = s.rcpt(r)
        assert code == 250, (r, code, resp)
    code, resp = s.data(msg)
    assert code == 250, (code, resp)
    return queue_id(resp)


def check_received(m, qid, protocol, tls_sock=None, user="alice@example.test"):
    rec = m.received
    assert rec.startswith("Received: from "), rec
    assert re.search(r"\bfrom " + re.escape(CLIENT_NAME) + r"\b", rec), rec
    assert "[127.0.0.1]" in rec, rec
    assert re.search(r"\bby " + re.escape(HOSTNAME) + r"\b", rec), rec
    assert re.search(r"\bwith " + protocol + r"\b", rec), rec
    assert re.search(r"\bid " + re.escape(qid) + r"\b", rec), rec
    assert user in rec, f"authenticated user {user} not named: {rec}"
    if tls_sock is not None:
        assert tls_sock.version() in rec, rec
        assert tls_sock.cipher()[0] in rec, rec
    else:
        assert "TLSv1" not in rec, rec
    date = rec.rsplit(";", 1)[1].strip()
    when = email.utils.parsedate_to_datetime(date)
    assert when.tzinfo is not None, date
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 3600, date


@pytest.mark.parametrize("tls", [True, False], ids=["starttls", "plain-loopback"])
def test_dot_lines_and_8bit_byte_exact(daemon, tls):
    s = daemon.authed(tls=tls)
    try:
        qid = send(s, "alice@example.test", ["bob@example.test", "carol@example.org"],
                   DOT_MESSAGE, ["BODY=8BITMIME"])
        sock = s.sock if tls else None
        msgs = daemon.messages()
        assert len(msgs) == 1
        data = msgs[0]
        assert b"\r" not in data, "Maildir file must use LF line ends"
        m = Delivered(data)
        assert m.return_path == "<alice@example.test>"
        assert m.envelope_to == ["<bob@example.test>", "<carol@example.org>"]
        check_received(m, qid, "ESMTPSA" if tls else "ESMTPA", sock)
        assert m.body == lf(DOT_MESSAGE)
    finally:
        s.close()


def test_maildir_file_name_and_layout(daemon):
    with daemon.authed() as s:
        send(s, "alice@example.test", ["bob@example.test"], b"Subject: x\r\n\r\nbody\r\n")
    for sub in ("tmp", "new", "cur"):
        assert (daemon.maildir / sub).is_dir()
    files = daemon.message_files()
    assert len(files) == 1
    assert list((daemon.maildir / "tmp").iterdir()) == []
    # Maildir names: no '/' obviously, no ':' in new/, unique
    assert ":" not in files[0].name and files[0].name[0] != "."


def test_queue_ids_unique_and_logged(daemon):
    start = daemon.mark()
    ids = []
    with daemon.authed() as s:
        for i in range(5):
            ids.append(send(s, "alice@example.test", ["bob@example.test"],
                            f"Subject: n{i}\r\n\r\nbody {i}\r\n".encode()))
    assert len(set(ids)) == 5
    assert len(daemon.messages()) == 5
    for qid in ids:
        daemon.wait_log(r"event=delivered\b.*\bid=" + re.escape(qid) + r"\b", start=start)


def test_smtputf8_addresses(daemon):
    with daemon.authed() as s:
        s.command_encoding = "utf-8"
        code, resp = s.docmd("MAIL", "FROM:<alice@example.test> SMTPUTF8 BODY=8BITMIME")
        assert code == 250, (code, resp)
        code, resp = s.docmd("RCPT", "TO:<bøb@exämple.test>")
        assert code == 250, (code, resp)
        code, resp = s.data("Subject: ünïcode\r\n\r\nhej\r\n".encode())
        assert code == 250, (code, resp)
    m = Delivered(daemon.messages()[0])
    assert m.envelope_to == ["<bøb@exämple.test>"]
    assert re.search(r"\bwith UTF8ESMTPA\b|\bwith ESMTPA\b", m.received)
    assert m.body == "Subject: ünïcode\n\nhej\n".encode()


def test_null_sender(daemon):
    with daemon.authed() as s:
        code, resp = s.docmd("MAIL", "FROM:<>")
        assert code == 250, (code, resp)
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.data(b"Subject: bounce\r\n\r\nx\r\n")[0] == 250
    assert Delivered(daemon.messages()[0]).return_path == "<>"


# ---- size


def test_size_refused_at_mail(start_daemon):
    d = start_daemon(server={"max_message_size": "64K"})
    with d.authed() as s:
        assert s.mail("alice@example.test", ["SIZE=65537"]) == SIZE_552
        assert s.mail("alice@example.test", ["SIZE=99999999999"]) == SIZE_552
        assert s.mail("alice@example.test", ["SIZE=65536"])[0] == 250


def test_size_refused_in_data(start_daemon):
    d = start_daemon(server={"max_message_size": "64K"})
    with d.authed() as s:
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        big = b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 1500   # ~120K
        assert s.data(big) == SIZE_552
        assert d.messages() == []
        # the session stays in step: a small message goes through
        send(s, "alice@example.test", ["bob@example.test"], b"Subject: small\r\n\r\nok\r\n")
    assert len(d.messages()) == 1


def test_size_limit_boundary_in_data(start_daemon):
    """max_message_size counts the message as submitted (CRLF line ends,
    after unstuffing): exactly the limit passes, one octet more does not."""
    limit = 64 * 1024
    d = start_daemon(server={"max_message_size": "64K"})

    def message(n):
        head = b"Subject: edge\r\n\r\n"
        line = b"z" * 98 + b"\r\n"
        body = head
        while len(body) + len(line) <= n - 10:
            body += line
        pad = n - len(body) - 2
        return body + b"q" * pad + b"\r\n"

    exact, over = message(limit), message(limit + 1)
    assert len(exact) == limit and len(over) == limit + 1
    with d.authed() as s:
        send(s, "alice@example.test", ["bob@example.test"], exact)
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.data(over) == SIZE_552
    msgs = d.messages()
    assert len(msgs) == 1 and Delivered(msgs[0]).body == lf(exact)


def test_ten_megabyte_message(start_daemon):
    d = start_daemon(server={"max_message_size": "25M", "timeout_data": "10m"})
    rnd = random.Random(20261123)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+"
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    text = rnd.randbytes(11 * 1024 * 1024).translate(table)
    lines = [b"Subject: ten megabytes", b"X-Test: big", b""]
    size, pos = 0, 0
    while size < 10 * 1024 * 1024:
        n = rnd.randint(0, 200)
        line = text[pos:pos + n]
        pos += n
        if rnd.random() < 0.02:
            line = b"." + line
        lines.append(line)
        size += len(line) + 2
    msg = b"\r\n".join(lines) + b"\r\n"
    s = d.authed(tls=True)
    s.timeout = 300 * T
    s.sock.settimeout(300 * T)
    try:
        qid = send(s, "alice@example.test", ["bob@example.test"], msg)
    finally:
        s.close()
    msgs = d.messages()
    assert len(msgs) == 1
    m = Delivered(msgs[0])
    assert re.search(r"\bid " + re.escape(qid) + r"\b", m.received)
    want = lf(msg)
    assert len(m.body) == len(want)
    assert hashlib.sha256(m.body).hexdigest() == hashlib.sha256(want).hexdigest()


# ---- recipients


def test_too_many_recipients(start_daemon):
    d = start_daemon(server={"max_recipients": "3"})
    with d.authed() as s:
        assert s.mail("alice@example.test")[0] == 250
        for i in range(3):
            assert s.rcpt(f"r{i}@example.org")[0] == 250
        assert s.rcpt("r3@example.org") == (452, b"4.5.3 Too many recipients")
        assert s.rcpt("r4@example.org") == (452, b"4.5.3 Too many recipients")
        code, resp = s.data(b"Subject: three\r\n\r\nx\r\n")
        assert code == 250, (code, resp)
    m = Delivered(d.messages()[0])
    assert m.envelope_to == [f"<r{i}@example.org>" for i in range(3)]


# ---- line limits


def test_text_line_of_1000_accepted(daemon):
    line = b"a" * 998
    msg = b"Subject: long line\r\n\r\n" + line + b"\r\n"
    with daemon.authed() as s:
        send(s, "alice@example.test", ["bob@example.test"], msg)
    assert Delivered(daemon.messages()[0]).body == lf(msg)


@pytest.mark.parametrize("n", [999, 5000, 100000])
def test_text_line_over_1000_refused(daemon, n):
    with daemon.authed() as s:
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        code, resp = s.data(b"Subject: long line\r\n\r\n" + b"a" * n + b"\r\nafter\r\n")
        assert code == 550 and resp.startswith(b"5.6.0"), (code, resp)
        assert daemon.messages() == []
        # still in step
        send(s, "alice@example.test", ["bob@example.test"], b"Subject: ok\r\n\r\nok\r\n")
    assert len(daemon.messages()) == 1


def test_long_header_line_refused(daemon):
    with daemon.authed() as s:
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        code, resp = s.data(b"Subject: " + b"h" * 1200 + b"\r\n\r\nbody\r\n")
        assert code == 550 and resp.startswith(b"5.6.0"), (code, resp)
    assert daemon.messages() == []


# ---- pipelining


def raw_authed(d, tls=False):
    r = d.raw(tls=tls)
    assert r.read_reply()[0] == 220
    code, lines = r.cmd("EHLO client.test")
    assert code == 250 and "PIPELINING" in lines
    assert r.auth_plain("alice@example.test", "alice-secret")[0] == 235
    return r


def test_pipelined_transaction_in_order(daemon):
    with raw_authed(daemon) as r:
        r.send(b"MAIL FROM:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"RCPT TO:<not-an-address\r\n"
               b"RCPT TO:<carol@example.org>\r\n"
               b"DATA\r\n")
        replies = [r.read_reply() for _ in range(5)]
        codes = [c for c, _ in replies]
        assert codes[2] in (501, 553), replies   # the bad one, in its place
        codes[2] = 501
        assert codes == [250, 250, 501, 250, 354], replies
        assert replies[0][1][0].startswith("2.1.0")
        assert replies[1][1][0].startswith("2.1.5")
        # end of data and the next transaction in one write
        r.send(b"Subject: pipelined 1\r\n\r\nfirst\r\n.\r\n"
               b"MAIL FROM:<alice@example.test>\r\n"
               b"RCPT TO:<dave@example.org>\r\n"
               b"DATA\r\n")
        code, lines = r.read_reply()
        assert code == 250
        q1 = queue_id(lines[0])
        replies = [r.read_reply() for _ in range(3)]
        assert [c for c, _ in replies] == [250, 250, 354], replies
        r.send(b"Subject: pipelined 2\r\n\r\nsecond\r\n.\r\nNOOP\r\nQUIT\r\n")
        code, lines = r.read_reply()
        assert code == 250
        q2 = queue_id(lines[0])
        assert r.read_reply()[0] == 250
        assert r.read_reply()[0] == 221
    msgs = [Delivered(m) for m in daemon.messages()]
    assert len(msgs) == 2
    by_id = {}
    for m in msgs:
        by_id[re.search(r"\bid (\S+)", m.received).group(1).rstrip(";")] = m
    assert set(by_id) == {q1, q2}
    assert by_id[q1].envelope_to == ["<bob@example.test>", "<carol@example.org>"]
    assert by_id[q1].body == b"Subject: pipelined 1\n\nfirst\n"
    assert by_id[q2].envelope_to == ["<dave@example.org>"]
    assert by_id[q2].body == b"Subject: pipelined 2\n\nsecond\n"


# ---- SMTP smuggling


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r"],
                         ids=["LF.LF", "CR.CRLF", "LF.CRLF", "CRLF.LF", "CR.CR"])
def test_fake_end_of_data_does_not_end_data(daemon, fake_end):
    with raw_authed(daemon) as r:
        assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: smuggle\r\n\r\nhello" + fake_end +
               b"MAIL FROM:<evil@example.org>\r\n"
               b"RCPT TO:<victim@example.org>\r\n"
               b"DATA\r\n"
               b"Subject: smuggled\r\n\r\nevil\r\n")
        assert r.nothing_for(1.5 * T), f"DATA ended early: {r.buf!r}"
        r.send(b".\r\n")
        code, lines = r.read_reply()
        assert (code, lines) == (550, ["5.6.0 Bare CR or LF not allowed"])
        # nothing of the smuggled commands is answered: the next reply is the NOOP's
        assert r.cmd("NOOP")[0] == 250
        assert r.nothing_for(0.5), r.buf
    assert daemon.messages() == []


def test_bare_lf_in_header_refused(daemon):
    with raw_authed(daemon) as r:
        assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: a\nX-Bare: lf\r\n\r\nbody\r\n.\r\n")
        assert r.read_reply() == (550, ["5.6.0 Bare CR or LF not allowed"])
    assert daemon.messages() == []


def test_refused_big_message_leaves_nothing(daemon):
    """The message streams to tmp/ as it arrives; refused at its end (a bare
    LF after 1 MB), its tmp file is removed, never renamed, and the session
    goes on."""
    with raw_authed(daemon) as r:
        assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1024)
        r.send(b"bare\nlf\r\n.\r\n")
        assert r.read_reply() == (550, ["5.6.0 Bare CR or LF not allowed"])
        assert r.cmd("NOOP")[0] == 250
    assert daemon.messages() == []
    tmp = daemon.maildir / "tmp"
    wait_until(lambda: list(tmp.iterdir()) == [], timeout=5, what="an empty tmp/")


def test_end_of_data_split_across_writes(daemon):
    with raw_authed(daemon) as r:
        assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        for piece in [b"Subject: split\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"][:-1]:
            r.send(piece)
            time.sleep(0.15)
            assert r.nothing_for(0.1), r.buf
        r.send(b"\n")
        code, lines = r.read_reply()
        assert code == 250
    assert Delivered(daemon.messages()[0]).body == b"Subject: split\n\nbody\n"


def test_empty_message(daemon):
    with raw_authed(daemon) as r:
        assert r.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        assert r.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        code, lines = r.cmd(".")
        assert code == 250, (code, lines)
    assert Delivered(daemon.messages()[0]).body == b""


# ---- many at once


def test_200_concurrent_authenticated_sessions(daemon):
    n = 200
    barrier = threading.Barrier(n, timeout=180 * T)
    errors, ids = [], {}
    lock = threading.Lock()

    def client(i):
        try:
            s = daemon.smtp(timeout=120 * T)
            try:
                s.ehlo()
                user = ("alice@example.test", "bob@example.test")[i % 2]
                code, resp = s.auth("PLAIN", lambda c=None: f"\0{user}\0{daemon.users[user]}")
                assert code == 235, (code, resp)
                barrier.wait()   # all 200 are connected and authenticated now
                qid = send(s, user, [f"rcpt{i}@example.org"],
                           f"Subject: concurrent {i}\r\n\r\nmessage number {i}\r\n".encode())
                with lock:
                    ids[i] = qid
                s.quit()
            finally:
                s.close()
        except Exception as e:  # noqa: report every failure
            with lock:
                errors.append(f"client {i}: {e!r}")
            try:
                barrier.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 400 * T
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients still running at the deadline"
    assert not errors, "\n".join(errors[:10])
    assert len(ids) == n and len(set(ids.values())) == n
    msgs = [Delivered(m) for m in daemon.messages()]
    assert len(msgs) == n
    subjects = set()
    for m in msgs:
        mm = re.match(rb"Subject: concurrent (\d+)\n\nmessage number (\d+)\n$", m.body)
        assert mm and mm.group(1) == mm.group(2), m.body
        i = int(mm.group(1))
        assert m.envelope_to == [f"<rcpt{i}@example.org>"]
        subjects.add(i)
    assert subjects == set(range(n))
