"""Out of file descriptors: accept pauses instead of spinning on a
listener that stays readable, says so once, and resumes when sessions
close (issue 2, item 3)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import T


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])       # utime + stime


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_accept_pauses_when_out_of_descriptors(start_daemon):
    d = start_daemon()
    pid = d.proc.pid
    used = len(os.listdir(f"/proc/{pid}/fd"))
    limit = used + 10
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
    mark = d.mark()
    conns = []
    try:
        for _ in range(40):                  # more than the daemon can take
            conns.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
        d.wait_log(r"event=accept_paused\b", start=mark, timeout=10 * T)
        # paused, not spinning: well under a tenth of a core over 2 s
        t0 = cpu_ticks(pid)
        time.sleep(2)
        used_ticks = cpu_ticks(pid) - t0
        hz = os.sysconf("SC_CLK_TCK")
        assert used_ticks < 0.2 * hz * T, f"{used_ticks} ticks in 2 s while out of descriptors"
        assert len(d.log_lines("accept_paused", mark)) == 1
    finally:
        for c in conns:
            c.close()
    # the sessions end, descriptors come back, accepting resumes
    deadline = time.monotonic() + 15 * T
    while True:
        try:
            with socket.create_connection(("127.0.0.1", d.port), timeout=2) as s:
                s.settimeout(2)
                if s.recv(100).startswith(b"220 "):
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "no greeting after the descriptors came back"
        time.sleep(0.1)
    assert d.running()
