#!/usr/bin/python3
"""Cluster propagation latency: block on node 1 -> enforced on node 2.

Starts a private redis-server (free loopback port, no persistence, temp dir)
and two portcullisd nodes on it (`[store] backend = redis`), then N times
(default 1,000): sends `block` for a fresh address 198.18.x.y to node 1's
control socket and polls node 2's control socket with `status` until the
address is no longer `clear`. The latency of one sample runs from just
before the block request is written to the first status answer that shows
the block. Reports p50/p99/max in ms; last line:

    RESULT propagation p50_ms=… p99_ms=… max_ms=… n=1000 timeouts=0

Usage (from the repository root):
    /usr/bin/python3 bench/propagation.py --build build [-n 1000] [--keep]

Not a test: it asserts nothing and never fails on speed. Bounded in time:
each sample gives up after --sample-timeout seconds (counted as a timeout),
the whole run after --deadline seconds.
"""

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the integration tests' helpers: free ports, and the private redis-server
sys.path.insert(0, str(REPO / "tests" / "integration"))
import pytest  # noqa: E402  (clusterutil reports a failed start with pytest.fail)
from clusterutil import Redis  # noqa: E402
from smtputil import free_ports  # noqa: E402


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"propagation: timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Control:
    """A persistent connection to a node's control socket: one JSON line
    out, one JSON line back."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def request(self, req):
        self.sock.sendall(json.dumps(req, separators=(",", ":")).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("control socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.sock.close()


def node_config(folder, name, port, redis_port):
    folder.mkdir(parents=True)
    (folder / "var").mkdir()
    (folder / "users").write_text("")
    conf = folder / "portcullis.conf"
    conf.write_text(f"""[server]
hostname = {name}
listen = 127.0.0.1:{port}/plain
workers = 1

[auth]
users = users

[guard]
ban_durations = 1h

[store]
backend = redis
redis = 127.0.0.1:{redis_port}

[delivery]
maildir = var/mail

[control]
socket = var/portcullis.sock

[log]
level = warn
""")
    return conf


def pct(sorted_v, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_v:
        return float("nan")
    k = max(0, min(len(sorted_v) - 1, int(-(-p * len(sorted_v) // 100)) - 1))
    return sorted_v[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="meson build folder [build]")
    ap.add_argument("-n", type=int, default=1000, help="blocks to time [1000]")
    ap.add_argument("--sample-timeout", type=float, default=2.0,
                    help="give up on one sample after this many seconds [2]")
    ap.add_argument("--deadline", type=float, default=600.0,
                    help="give up on the whole run after this many seconds [600]")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    ap.add_argument("--nodes", type=int, default=2,
                    help="nodes on the one Redis [2]; blocks go to the first, the last is polled")
    args = ap.parse_args()
    if not 1 <= args.n <= 62500:
        ap.error("-n must be 1..62500 (one 198.18.0.0/15 address each)")

    build = Path(args.build)
    if not build.is_absolute():
        build = (Path.cwd() / build).resolve()
    pd = build / "portcullisd"
    if not pd.exists():
        raise SystemExit(f"propagation: {pd} is missing: build first (ninja -C {args.build})")
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        # checked here: clusterutil.Redis would apt-get them itself
        raise SystemExit("propagation: redis-server is missing "
                         "(apt-get install redis-server redis-tools)")

    tmp = Path(tempfile.mkdtemp(prefix="portcullis-propagation-"))
    procs = []
    redis = None
    started = time.monotonic()
    try:
        if not 2 <= args.nodes <= 20:
            raise SystemExit("propagation: --nodes must be 2 .. 20")
        redis_port, *ports = free_ports(1 + args.nodes)
        redis = Redis(tmp / "redis", port=redis_port)
        try:
            redis.start()
        except pytest.fail.Exception as e:
            raise SystemExit(f"propagation: {e}")

        nodes = []
        for name, port in ((f"node{k + 1}", p) for k, p in enumerate(ports)):
            folder = tmp / name
            conf = node_config(folder, name, port, redis_port)
            log = folder / "daemon.log"
            with open(log, "wb") as lf:
                procs.append(subprocess.Popen([str(pd), "-c", str(conf)], cwd=str(folder),
                                              stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                              start_new_session=True))
            sock = folder / "var" / "portcullis.sock"
            proc = procs[-1]

            def ready(sock=sock, proc=proc):
                if proc.poll() is not None:
                    raise SystemExit(f"propagation: {name} exited ({proc.returncode}); "
                                     f"see {log}")
                return sock.exists()
            wait_for(ready, 20, f"{name}'s control socket")
            nodes.append(sock)
        c1, c2 = Control(nodes[0]), Control(nodes[-1])
        # node2 must have joined the cluster: a warm-up block must reach it
        warm = c1.request({"cmd": "block", "ip": "198.19.255.254", "duration_ms": 60000,
                           "by": "bench"})
        if not warm.get("ok"):
            raise SystemExit(f"propagation: block on node1 failed: {warm}")
        wait_for(lambda: c2.request({"cmd": "status", "ip": "198.19.255.254"})
                 ["result"]["state"] != "clear", 20, "node2 to see the warm-up block")

        lat, timeouts, polls = [], 0, 0
        block_rtt, status_rtt, first_poll_hit = [], [], 0
        status_by_sample = []
        for i in range(args.n):
            if time.monotonic() - started > args.deadline:
                print(f"propagation: deadline of {args.deadline}s reached after {i} samples",
                      file=sys.stderr)
                break
            ip = f"198.18.{i // 250}.{i % 250 + 1}"
            t0 = time.perf_counter()
            r = c1.request({"cmd": "block", "ip": ip, "duration_ms": 60000, "by": "bench"})
            tb = time.perf_counter()
            block_rtt.append((tb - t0) * 1000.0)
            if not r.get("ok"):
                raise SystemExit(f"propagation: block {ip} on node1 failed: {r}")
            first = True
            while True:
                polls += 1
                ts = time.perf_counter()
                st = c2.request({"cmd": "status", "ip": ip})
                t1 = time.perf_counter()
                status_rtt.append((t1 - ts) * 1000.0)
                status_by_sample.append((i, (t1 - ts) * 1000.0))
                if st.get("ok") and st["result"]["state"] != "clear":
                    lat.append((t1 - t0) * 1000.0)
                    first_poll_hit += first
                    break
                first = False
                if t1 - t0 > args.sample_timeout:
                    timeouts += 1
                    break
        c1.close()
        c2.close()

        v = sorted(lat)
        print(f"samples {len(v)}, timeouts {timeouts} (> {args.sample_timeout}s), "
              f"status polls {polls}")
        if v:
            print(f"latency block on node1 -> status not clear on node{args.nodes} (ms): "
                  f"min {v[0]:.3f}  p50 {pct(v, 50):.3f}  p90 {pct(v, 90):.3f}  "
                  f"p99 {pct(v, 99):.3f}  max {v[-1]:.3f}  mean {statistics.fmean(v):.3f}")
        if block_rtt:
            b, s2 = sorted(block_rtt), sorted(status_rtt)
            print(f"of which: block request round trip on node1 p50 {pct(b, 50):.3f} "
                  f"p99 {pct(b, 99):.3f} ms; one status poll on node{args.nodes} p50 {pct(s2, 50):.3f} "
                  f"p99 {pct(s2, 99):.3f} ms; already enforced at the first poll: "
                  f"{first_poll_hit}/{len(v)}")
            k = max(1, len(block_rtt) // 10)
            early = sorted(x for j, x in status_by_sample if j < k)
            late = sorted(x for j, x in status_by_sample if j >= len(block_rtt) - k)
            print(f"status poll p50 over the first {k} samples {pct(early, 50):.3f} ms, "
                  f"over the last {k} {pct(late, 50):.3f} ms (history grows by one block "
                  f"per sample)")
        print(f"RESULT propagation p50_ms={pct(v, 50):.3f} p99_ms={pct(v, 99):.3f} "
              f"max_ms={(v[-1] if v else float('nan')):.3f} n={len(v)} timeouts={timeouts}")
        return 0 if v and timeouts == 0 else 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        if redis is not None:
            redis.stop()
        if args.keep:
            print(f"propagation: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
