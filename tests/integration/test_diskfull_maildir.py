"""Disk full under the Maildir (issue 5 item 5).

The Maildir lives on a 2 MiB tmpfs (mounted here; skipped where mounting is
not allowed). A filler file leaves ~600 KiB; 100 KiB messages are submitted
until the daemon answers `452 4.3.1`. Never a 250 for a message that was not
stored: every 250'd message is in new/ byte-exact, no refused one is, tmp/
holds no leftovers; the daemon stays up (NOOP on the same session, a new
session); after the filler is deleted a new message gets 250 again.
"""

import re

from conftest import T, Delivered
from hostileutil import (
    HOSTILE_GUARD, PASSWORD, RCPT, USER, Client, body_for, expected_stored, fill,
    good_transaction, mount_tmpfs, plain_b64, stuffed, umount,
)


def send_message(c, token, size):
    code, lines = c.cmd(f"MAIL FROM:<{USER}>")
    assert code == 250, lines
    code, lines = c.cmd(f"RCPT TO:<{RCPT}>")
    assert code == 250, lines
    code, lines = c.cmd("DATA")
    assert code == 354, lines
    body = body_for(token, size)
    c.send(stuffed(body) + b".\r\n")
    r = c.read_reply(timeout=30 * T)
    return body, r.code, r.lines


def stored_tokens(maildir):
    out = {}
    for f in (maildir / "new").iterdir():
        dl = Delivered(f.read_bytes())
        m = re.search(rb"^Subject: (\S+)$", dl.body, re.M)
        assert m, f"{f.name}: no Subject in {dl.body[:200]!r}"
        out.setdefault(m.group(1).decode(), []).append(dl.body)
    return out


def test_maildir_disk_full(start_daemon, tmp_path):
    mnt = mount_tmpfs(tmp_path / "mailfs", "2m")
    d = None
    try:
        maildir = mnt / "mail"
        d = start_daemon(delivery={"maildir": str(maildir)}, guard=dict(HOSTILE_GUARD))
        filler = mnt / "filler"
        fill(filler, leave=600 * 1024)
        acked, refused, bodies = {}, {}, {}
        with Client(d.port) as c:
            assert c.cmd("EHLO full.example")[0] == 250
            assert c.cmd("AUTH PLAIN " + plain_b64(USER, PASSWORD))[0] == 235
            for i in range(40):
                token = f"full-{i:03d}"
                body, code, lines = send_message(c, token, 100 * 1024)
                bodies[token] = body
                if code == 250:
                    assert re.fullmatch(r"250 2\.0\.0 Ok: queued as \S+", lines[-1]), lines
                    acked[token] = lines[-1]
                else:
                    refused[token] = lines
                    assert code == 452 and lines[-1].startswith("452 4.3.1"), \
                        f"message {i} with the disk full: {lines} (want 452 4.3.1)"
                    if len(refused) >= 3:
                        break
            assert refused, f"40 x 100 KiB into ~600 KiB free and never a 452: {len(acked)} acked"
            assert acked, "nothing accepted before the disk was full"
            # the session and the daemon are fine
            assert c.cmd("NOOP").lines == ["250 2.0.0 Ok"]
            assert c.cmd("RSET")[0] == 250
        assert d.running(), d.log()[-3000:]
        with Client(d.port) as c2:
            assert c2.greeting[0] == 220, c2.greeting
            assert c2.cmd("NOOP")[0] == 250

        stored = stored_tokens(maildir)
        for token in acked:
            assert stored.get(token) == [expected_stored(bodies[token])], \
                f"{token} got 250 but is not in new/ intact"
        for token in refused:
            assert token not in stored, f"{token} got {refused[token]} yet was stored"
        leftovers = sorted(p.name for p in (maildir / "tmp").iterdir())
        assert leftovers == [], f"partial files left in tmp/: {leftovers}"
        print(f"[diskfull] maildir: {len(acked)} accepted, then {len(refused)} x "
              f"{next(iter(refused.values()))[-1]!r}")

        # space returns: accepted again
        filler.unlink()
        took, token, qid = good_transaction(d.port)
        stored = stored_tokens(maildir)
        assert token in stored, "message after freeing space not in new/"
        with Client(d.port) as c:
            assert c.cmd("EHLO full.example")[0] == 250
            assert c.cmd("AUTH PLAIN " + plain_b64(USER, PASSWORD))[0] == 235
            body, code, lines = send_message(c, "full-after", 100 * 1024)
            assert code == 250, lines
        assert stored_tokens(maildir)["full-after"] == [expected_stored(body)]
    finally:
        if d is not None:
            d.stop()
        umount(mnt)
