"""Crash durability (issue 5 item 4).

Four client threads submit messages (unique token in each body, sizes from
a few hundred bytes to 200 KB) while the daemon is killed with SIGKILL at
random moments (KILLS times, bounded to ~90 s) and restarted each time.
Afterwards:
  - every message that got `250 2.0.0 Ok: queued as ID` is in new/,
    byte-exact (the message part after Return-Path/X-Envelope-To/Received,
    LF line ends, dot-unstuffed), and its Received: names the ID;
  - every file in new/ parses and holds one complete message we sent
    (no partial file), and no message is there twice;
  - tmp/ is cleaned at start (a planted stale file disappears; after the
    last restart with no clients tmp/ is empty);
  - blocks and history survive: a permanent manual block, a lifted manual
    block and an auth-failure block read back identically, and the blocked
    address still gets the 554 greeting.
"""

import json
import os
import random
import re
import threading
import time
from collections import defaultdict

from conftest import T, Delivered
from hostileutil import (
    PASSWORD, RCPT, USER, Client, Closed, body_for, expected_stored, plain_b64, stuffed,
)

#: SIGKILLs per run (CI: 32; `make soak` may raise it via PORTCULLIS_KILLS)
KILLS = int(os.environ.get("PORTCULLIS_KILLS", "32"))
TIME_BUDGET = max(90, 3 * KILLS)   # seconds for the kill loop (x T when sanitized)
AUTH_BLOCKED_SRC = "127.0.0.9"


class Ledger:
    def __init__(self):
        self.sent = {}        # token -> body (CRLF, as submitted before stuffing)
        self.acked = {}       # token -> queue id
        self.refused = {}     # token -> reply lines (a non-250 final reply)
        self.errors = defaultdict(int)
        self.crashed = []


def submitter(port, idx, stop, ledger, seed):
    try:
        _submitter(port, idx, stop, ledger, seed)
    except BaseException as e:     # a dead submitter would quietly shrink the load
        ledger.crashed.append(f"submitter {idx}: {e!r}")
        raise


def _submitter(port, idx, stop, ledger, seed):
    rng = random.Random(seed)
    seq = 0
    while not stop.is_set():
        try:
            c = Client(port, timeout=10 * T)
        except (OSError, Closed, TimeoutError):
            ledger.errors["connect"] += 1      # down, or killed before the greeting
            time.sleep(0.05)
            continue
        try:
            if c.greeting[0] != 220:
                ledger.errors[f"greeting {c.greeting[0]}"] += 1
                continue
            if c.cmd("EHLO durable.example")[0] != 250:
                continue
            if c.cmd("AUTH PLAIN " + plain_b64(USER, PASSWORD))[0] != 235:
                ledger.errors["auth"] += 1
                continue
            for _ in range(rng.randint(1, 6)):
                if stop.is_set():
                    break
                seq += 1
                token = f"dur-{idx}-{seq}-{rng.getrandbits(32):08x}"
                body = body_for(token, rng.choice([0, 0, 2000, 20000, 200000]))
                if c.cmd(f"MAIL FROM:<{USER}>")[0] != 250:
                    break
                if c.cmd(f"RCPT TO:<{RCPT}>")[0] != 250:
                    break
                if c.cmd("DATA")[0] != 354:
                    break
                ledger.sent[token] = body
                c.send(stuffed(body) + b".\r\n")
                r = c.read_reply()
                code, lines = r.code, r.lines
                if code == 250:
                    m = re.fullmatch(r"250 2\.0\.0 Ok: queued as (\S+)", lines[-1])
                    assert m, lines      # a 250 in another form: the test reports it
                    ledger.acked[token] = m.group(1)
                else:
                    ledger.refused[token] = lines
        except (OSError, Closed, TimeoutError) as e:
            ledger.errors[type(e).__name__] += 1
        except AssertionError as e:
            ledger.errors[f"bad reply {e}"] += 1
        finally:
            c.close()


def history(d, ip):
    return d.ctl_json("history", ip)


def test_sigkill_under_load_loses_nothing(start_daemon):
    d = start_daemon(guard={"concurrency_limit": "100000", "conn_rate_limit": "1000000",
                            "auth_fail_limit": "3", "unauth_limit": "100000"})
    tmpdir = d.maildir / "tmp"
    newdir = d.maildir / "new"

    # ---- blocks and history to survive
    d.ctl("block", "198.51.100.7", "--permanent", "--reason", "durability test", check=True)
    d.ctl("block", "192.0.2.5", "--for", "1h", "--reason", "to be lifted", check=True)
    d.ctl("unblock", "192.0.2.5", "--reason", "lifted before the crashes", check=True)
    with Client(d.port, source=AUTH_BLOCKED_SRC) as c:
        assert c.cmd("EHLO bad.example")[0] == 250
        for i in range(3):   # three guesses: the same one again would be a repeat
            code, lines = c.cmd("AUTH PLAIN " + plain_b64(USER, f"wrong-password-{i}"))
            assert code == 535, lines
    with Client(d.port, source=AUTH_BLOCKED_SRC) as c:
        assert c.greeting[0] == 554, c.greeting
    before = {ip: (d.ctl_json("status", ip)["state"], history(d, ip))
              for ip in ("198.51.100.7", "192.0.2.5", AUTH_BLOCKED_SRC)}
    assert before["198.51.100.7"][0] == "permanent", before
    assert before["192.0.2.5"][0] == "clear", before
    assert before["192.0.2.5"][1]["blocks"][0]["state"] == "lifted", before
    assert before[AUTH_BLOCKED_SRC][0] == "blocked", before

    # ---- load and kills
    ledger = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=submitter, args=(d.port, i, stop, ledger, 100 + i),
                                daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    rng = random.Random(42)
    kills = 0
    stale_checked = False
    t_start = time.monotonic()
    try:
        while kills < KILLS or time.monotonic() - t_start < 10:
            assert time.monotonic() - t_start < TIME_BUDGET * T, \
                f"only {kills} kills in {TIME_BUDGET * T}s"
            # mostly a while into the load, sometimes right after ready
            time.sleep(rng.uniform(0, 0.05) if rng.random() < 0.2 else rng.uniform(0.1, 1.0))
            d.kill9()
            kills += 1
            if kills == KILLS // 3:
                stale = tmpdir / "1700000000.M123P99999Qstale.mx.test.example"
                stale.write_bytes(b"Return-Path: <x@example.test>\nhalf a mess")
                d.start()
                assert not stale.exists(), "stale file in tmp/ not cleaned at start"
                stale_checked = True
            else:
                d.start()
            if kills >= KILLS and time.monotonic() - t_start >= 10:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30 * T)
    assert stale_checked
    assert not any(t.is_alive() for t in threads), "a submitter thread hung"
    assert not ledger.crashed, ledger.crashed

    # ---- one more crash, a stale file, and a restart with no clients
    d.kill9()
    kills += 1
    (tmpdir / "1700000001.M1P1Qstale2.mx.test.example").write_bytes(b"partial")
    d.start()
    leftover = sorted(p.name for p in tmpdir.iterdir())
    assert leftover == [], f"tmp/ not empty after a restart: {leftover[:10]}"

    # ---- every file in new/: complete, one of ours, once
    by_token = defaultdict(list)
    problems = []
    for f in sorted(newdir.iterdir()):
        data = f.read_bytes()
        try:
            dl = Delivered(data)
        except (AssertionError, IndexError) as e:
            problems.append(f"{f.name}: does not parse ({e}); {len(data)} bytes")
            continue
        m = re.search(rb"^Subject: (dur-\S+)$", dl.body, re.M)
        if not m:
            problems.append(f"{f.name}: no token; starts {dl.body[:120]!r}")
            continue
        token = m.group(1).decode()
        if token not in ledger.sent:
            problems.append(f"{f.name}: token {token} never sent")
            continue
        if dl.body != expected_stored(ledger.sent[token]):
            want = expected_stored(ledger.sent[token])
            problems.append(f"{f.name}: body differs (have {len(dl.body)} bytes, "
                            f"want {len(want)}): ends {dl.body[-80:]!r}")
        if dl.return_path != f"<{USER}>" or dl.envelope_to != [f"<{RCPT}>"]:
            problems.append(f"{f.name}: envelope {dl.return_path} {dl.envelope_to}")
        by_token[token].append((f.name, dl))
    dup = {t: [n for n, _ in v] for t, v in by_token.items() if len(v) > 1}

    missing = []
    wrong_id = []
    for token, qid in ledger.acked.items():
        if token not in by_token:
            missing.append((token, qid))
        elif not any(re.search(r"\b" + re.escape(qid) + r"\b", dl.received)
                     for _, dl in by_token[token]):
            wrong_id.append((token, qid, by_token[token][0][1].received))
    in_doubt = [t for t in by_token if t not in ledger.acked]
    refused_stored = [t for t in ledger.refused if t in by_token]

    print(f"[durability] kills={kills} sent={len(ledger.sent)} acknowledged={len(ledger.acked)} "
          f"found={len(ledger.acked) - len(missing)} files={sum(len(v) for v in by_token.values())} "
          f"stored-but-unacknowledged={len(in_doubt)} refused={len(ledger.refused)} "
          f"client-errors={dict(ledger.errors)} seconds={time.monotonic() - t_start:.1f}")

    assert kills >= min(30, KILLS)
    bad = {k: v for k, v in ledger.errors.items() if k.startswith("bad reply")}
    assert not bad, f"malformed replies: {bad}"
    assert len(ledger.acked) >= 100, f"too little load: {len(ledger.acked)} acknowledged"
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    assert not problems, f"{len(problems)} bad files in new/: {problems[:5]}"
    assert not dup, f"messages stored twice: {list(dup.items())[:3]}"
    assert not wrong_id, f"Received: does not name the queue id: {wrong_id[:3]}"
    assert not refused_stored, f"refused (non-250) messages in new/: {refused_stored[:5]}"

    # ---- blocks and history intact
    after = {ip: (d.ctl_json("status", ip)["state"], history(d, ip)) for ip in before}
    for ip in before:
        assert after[ip] == before[ip], \
            f"{ip} changed across the crashes:\nbefore {json.dumps(before[ip])}\n" \
            f"after  {json.dumps(after[ip])}"
    st = d.ctl_json("status", "198.51.100.7")
    assert st["state"] == "permanent" and st["block"]["reason"] == "manual", st
    with Client(d.port, source=AUTH_BLOCKED_SRC) as c:
        assert c.greeting[0] == 554, c.greeting
