#!/usr/bin/python3
"""bench/bigmsg.py: a running portcullisd's memory while N sessions are each
in DATA with one big message (issue 12: "memory per session in DATA with
25 MB messages").

N clients (smtplib, one thread each) log in, send MAIL, RCPT and DATA, wait
at a barrier until all have their 354, and then send their bodies at once;
meanwhile a sampler reads the RSS and PSS of the daemon's process tree every
20 ms. Peak RSS is also taken from VmHWM after resetting it (clear_refs 5),
so a short peak between two samples is not missed.

If the daemon streams DATA to its spool or next hop, the growth per session
stays a small buffer; if it held each message, it would be about the
message size. The last line on stdout is machine-readable:
  RESULT mode=bigmsg n=8 size=26214400 ok=8 err=0 base_rss_kb=.. peak_rss_kb=..
         hwm_kb=.. base_pss_kb=.. peak_pss_kb=.. per_session_kb=.. secs=..
Loopback only; every socket has a timeout, the whole run a deadline.
"""
import argparse
import ipaddress
import os
import smtplib
import sys
import threading
import time


def tree(roots):
    """The roots and all their descendants, from /proc."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    keep = set(roots)
    grown = True
    while grown:
        grown = False
        for p, pp in parent.items():
            if p not in keep and pp in keep:
                keep.add(p)
                grown = True
    return keep


def field(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem(pids):
    rss = sum(field(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(field(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return rss, pss


def body(size):
    """size bytes of 76-character lines, no line starting with a dot."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab\r\n"
    head = b"From: <bench@example.test>\r\nTo: <rcpt@example.test>\r\nSubject: bigmsg\r\n\r\n"
    n = max(0, size - len(head)) // len(line)
    return head + line * n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the daemon's (root) pid")
    ap.add_argument("-n", type=int, default=8, help="sessions at once")
    ap.add_argument("--size", type=int, default=25 * 1000 * 1000)
    ap.add_argument("--user", default="bench@example.test")
    ap.add_argument("--password", default="benchpw")
    ap.add_argument("--to", default="rcpt@example.test")
    ap.add_argument("--source-base", default="127.0.0.2")
    ap.add_argument("--timeout", type=float, default=120, help="the whole run, seconds")
    a = ap.parse_args()
    if not 1 <= a.n <= 256 or not 1 <= a.size <= 256 << 20:
        ap.error("-n within 1..256, --size within 1..256 MB")
    if not ipaddress.ip_address(a.source_base).is_loopback:
        ap.error("--source-base must be a loopback address")

    msg = body(a.size)
    pids = tree([a.pid])
    for p in pids:   # reset the peak RSS (VmHWM) to the current RSS
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    time.sleep(0.2)
    base_rss, base_pss = mem(pids)
    peak = [base_rss, base_pss]
    done = threading.Event()

    def sample():
        while not done.is_set():
            r, s = mem(tree([a.pid]))
            peak[0], peak[1] = max(peak[0], r), max(peak[1], s)
            time.sleep(0.02)

    barrier = threading.Barrier(a.n, timeout=a.timeout)
    results = []
    base_ip = ipaddress.ip_address(a.source_base)

    def client(i):
        ok, why = False, ""
        try:
            src = (str(base_ip + i % 4), 0)
            with smtplib.SMTP("127.0.0.1", a.port, timeout=a.timeout, source_address=src) as s:
                s.ehlo("bigmsg.bench.test")
                s.login(a.user, a.password)
                s.mail(a.user, [f"SIZE={len(msg)}"] if s.has_extn("size") else [])
                code, _ = s.rcpt(a.to)
                if code not in (250, 251):
                    raise smtplib.SMTPException(f"RCPT {code}")
                code, _ = s.docmd("DATA")
                if code != 354:
                    raise smtplib.SMTPException(f"DATA {code}")
                barrier.wait()
                s.send(msg + b".\r\n")
                code, text = s.getreply()
                ok, why = code == 250, f"{code}"
                s.quit()
        except (OSError, smtplib.SMTPException, threading.BrokenBarrierError) as e:
            why = f"{type(e).__name__}: {e}"[:120]
            barrier.abort()
        results.append((ok, why))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, a.timeout - (time.monotonic() - t0)))
    secs = time.monotonic() - t0
    done.set()
    sampler.join(1)
    hwm = sum(field(f"/proc/{p}/status", "VmHWM:") for p in tree([a.pid]))
    ok = sum(1 for r in results if r[0])
    errs = sorted({r[1] for r in results if not r[0]})
    # The growth per session: the higher of the sampled peak and VmHWM,
    # against the RSS before the sessions, split over the sessions.
    top = max(peak[0], hwm)
    per = (top - base_rss) / a.n
    print(f"bigmsg: {a.n} sessions x {len(msg) / 1e6:.1f} MB, {ok} accepted in {secs:.1f} s; "
          f"RSS {base_rss / 1024:.1f} -> {top / 1024:.1f} MB (sampled peak {peak[0] / 1024:.1f}, "
          f"VmHWM {hwm / 1024:.1f}), PSS {base_pss / 1024:.1f} -> {peak[1] / 1024:.1f} MB; "
          f"{per / 1024:.2f} MB per session" + (f"; errors: {'; '.join(errs)}" if errs else ""),
          file=sys.stderr)
    print(f"RESULT mode=bigmsg n={a.n} size={len(msg)} ok={ok} err={a.n - ok} base_rss_kb={base_rss} "
          f"peak_rss_kb={peak[0]} hwm_kb={hwm} base_pss_kb={base_pss} peak_pss_kb={peak[1]} "
          f"per_session_kb={per:.0f} secs={secs:.2f}")
    return 0 if ok == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
