#!/usr/bin/python3
"""The spray benchmark (issue 15): connections from N distinct addresses
through PROXY headers against a portcullisd with a small max_tracked.

For each N it starts a fresh daemon (loopback port, temp dir), brings a few
"near-limit" addresses to auth_fail_limit - 1 failures, sprays N fresh
addresses with bench-spray in ten slices while sampling the daemon's
resident memory, then asks `portcullisctl --json` whether the near-limit
addresses kept their counts (and that the next failure blocks them).

Usage: spray.py --build DIR [--n 100000,1000000] [--max-tracked 10000]
                [--port 24260] [--concurrency 64] [--out FILE]
Prints a table; last line per N: RESULT spray_daemon n=.. max_tracked=.. ..."""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

NEAR = [f"198.51.100.{i}" for i in range(1, 6)]
LIMIT = 5


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proxy_v1(src):
    return f"PROXY TCP4 {src} 192.0.2.25 40000 587\r\n".encode()


def read_reply(sock_file):
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line.decode().rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return lines


def fail_auth(port, src, n):
    """One session from src (PROXY v1): EHLO, n failed AUTH PLAIN; the codes."""
    codes = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(proxy_v1(src))
        f = s.makefile("rb")
        greet = read_reply(f)
        if not greet[-1].startswith("220"):
            return [int(greet[-1][:3])]
        s.sendall(b"EHLO bench.test\r\n")
        read_reply(f)
        bad = base64.b64encode(b"\0alice@example.org\0wrong password").decode()
        for _ in range(n):
            s.sendall(f"AUTH PLAIN {bad}\r\n".encode())
            codes.append(int(read_reply(f)[-1][:3]))
        s.sendall(b"QUIT\r\n")
    return codes


def ctl(build, conf, *args):
    cp = subprocess.run([os.path.join(build, "portcullisctl"), "-c", conf, "--json", *args],
                        capture_output=True, text=True, timeout=60)
    if cp.returncode != 0:
        raise RuntimeError(f"portcullisctl {' '.join(args)}: {cp.stderr}")
    return json.loads(cp.stdout)


def run_one(a, n):
    d = tempfile.mkdtemp(prefix="portcullis-spray.")
    conf = os.path.join(d, "portcullis.conf")
    os.makedirs(os.path.join(d, "var"))
    open(os.path.join(d, "users"), "w").close()
    with open(conf, "w") as f:
        f.write(f"""[server]
hostname = portcullis.bench.test
listen = 127.0.0.1:{a.port}
workers = auto
max_clients = 100000
proxy_protocol = yes
proxy_from = 127.0.0.1/32
[tls]
plain_auth_from = 198.51.100.0/24
[auth]
users = users
failure_delay = 0s
[guard]
auth_fail_limit = {LIMIT}
auth_fail_window = 1h
conn_rate_limit = 1000
concurrency_limit = 1000
max_tracked = {a.max_tracked}
[store]
path = var/portcullis.db
[delivery]
maildir = var/mail
[control]
socket = var/portcullis.sock
[log]
level = warn
""")
    log = open(os.path.join(d, "daemon.log"), "w")
    p = subprocess.Popen([os.path.join(a.build, "portcullisd"), "-c", conf], stderr=log, stdout=log)
    try:
        sock = os.path.join(d, "var", "portcullis.sock")
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        for src in NEAR:
            codes = fail_auth(a.port, src, LIMIT - 1)
            assert codes == [535] * (LIMIT - 1), (src, codes)
        rss0 = rss_kb(p.pid)
        samples = []
        slices = 10
        per = n // slices
        t0 = time.monotonic()
        for k in range(slices):
            cp = subprocess.run([os.path.join(a.build, "bench", "bench-spray"), "-P", str(a.port),
                                 "-n", str(per), "-b", str(k * per), "-c", str(a.concurrency)],
                                capture_output=True, text=True, timeout=1800)
            res = dict(kv.split("=") for kv in cp.stdout.split()[2:]) if "RESULT" in cp.stdout else {}
            samples.append((per * (k + 1), rss_kb(p.pid), res))
            if cp.returncode != 0:
                print(f"spray: slice {k}: {cp.stdout}{cp.stderr}", file=sys.stderr)
        secs = time.monotonic() - t0
        st = ctl(a.build, conf, "stats")
        kept = sum(ctl(a.build, conf, "status", s)["counters"]["auth_failures"] == LIMIT - 1 for s in NEAR)
        blocked = 0
        for s in NEAR:
            fail_auth(a.port, s, 1)
            blocked += ctl(a.build, conf, "status", s)["state"] == "blocked"
        ok = sum(int(r.get("ok", 0)) for _, _, r in samples)
        errors = sum(int(r.get("errors", 0)) for _, _, r in samples)
        rss_mid = samples[slices // 2 - 1][1]
        rss_end = samples[-1][1]
        print(f"N = {n:,} addresses (PROXY v2, IPv4), max_tracked = {a.max_tracked:,}, "
              f"concurrency {a.concurrency}:")
        print(f"  {n / secs:,.0f} connections/s ({secs:.1f} s; {ok:,} greeted 220, {errors} errors)")
        print("  daemon RSS (kB) after each tenth: " + " ".join(str(r) for _, r, _ in samples)
              + f" (before the spray: {rss0})")
        print(f"  second half growth: {rss_end - rss_mid} kB; tracked now {st['tracked_prefixes']:,}, "
              f"evictions {st['evictions']:,}, untracked {st.get('untracked', 0):,}")
        print(f"  near-limit addresses that kept their {LIMIT - 1} failures: {kept} of {len(NEAR)}; "
              f"blocked at the next failure: {blocked} of {len(NEAR)}")
        print(f"RESULT spray_daemon n={n} max_tracked={a.max_tracked} conns_per_s={n / secs:.0f} "
              f"rss_start_kb={rss0} rss_mid_kb={rss_mid} rss_end_kb={rss_end} "
              f"tracked={st['tracked_prefixes']} evictions={st['evictions']} kept={kept} "
              f"blocked={blocked} near={len(NEAR)} errors={errors}")
        sys.stdout.flush()
        return kept == len(NEAR) and blocked == len(NEAR)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--n", default="100000,1000000")
    ap.add_argument("--max-tracked", type=int, default=10000)
    ap.add_argument("--port", type=int, default=24260)
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    good = all([run_one(a, int(x)) for x in a.n.split(",")])
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
