#!/usr/bin/python3
"""bench/report.py: turns bench/run.sh's raw results into the table it
prints and the docs/BENCHMARKS.md it writes. Standard library only."""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys

KEEP_MARKER = "<!-- bench/run.sh: everything below this line is kept -->"


def parse_kv(text):
    out = {}
    for word in text.split():
        if "=" in word:
            k, v = word.split("=", 1)
            out[k] = v
    return out


def num(d, k, default=None):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return default


def merge_counts(strings):
    total = {}
    for s in strings:
        if not s or s == "-":
            continue
        for part in s.split(","):
            if ":" in part:
                k, v = part.split(":", 1)
                try:
                    total[k] = total.get(k, 0) + int(v)
                except ValueError:
                    pass
    return total


def fmt_counts(d, drop_zero=False):
    items = [(k, v) for k, v in sorted(d.items()) if v or not drop_zero]
    return ",".join(f"{k}:{v}" for k, v in items) if items else "-"


def fmt_rate(x):
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
                    break
    except OSError:
        pass
    try:
        ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        ossl = "?"
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "mem": mem,
            "openssl": ossl}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--commands", required=True)
    ap.add_argument("--skipped", required=True)
    ap.add_argument("--notes", default="")
    ap.add_argument("--guard", required=True)
    ap.add_argument("--spray", default="")
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--seconds", required=True)
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--postfix-version", default="?")
    ap.add_argument("--dovecot-version", default="?")
    ap.add_argument("--ports", default="")
    ap.add_argument("--loadavg", default="?")
    ap.add_argument("--invocation", default="bench/run.sh")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    runs = {}   # (workload, server) -> [dict]
    with open(a.results) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            wl, srv, _run, rest = parts[0], parts[1], parts[2], parts[3]
            runs.setdefault((wl, srv), []).append(parse_kv(rest))
    commands = []
    with open(a.commands) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                commands.append(parts)
    skipped = []
    with open(a.skipped) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 1)
            if len(parts) == 2:
                skipped.append(parts)
    run_notes = []
    if a.notes and os.path.exists(a.notes):
        with open(a.notes) as f:
            run_notes = [line.strip() for line in f if line.strip()]
    guard = {}
    guard_text = ""
    if os.path.exists(a.guard):
        with open(a.guard) as f:
            guard_text = f.read()
        for line in guard_text.splitlines():
            if line.startswith("RESULT "):
                guard = parse_kv(line)

    def med(wl, srv, key):
        vals = [num(r, key) for r in runs.get((wl, srv), []) if num(r, key) is not None]
        return statistics.median(vals) if vals else None

    def idle(wl, srv):
        rs = runs.get((wl, srv))
        if not rs:
            return None
        r = rs[-1]
        base, hold = num(r, "base_kb", 0), num(r, "hold_kb", 0)
        opened = num(r, "open_at_start", 0)
        per = (hold - base) * 1024 / opened if opened and hold else None
        return {"open": int(num(r, "open", 0)), "at_start": int(opened), "conc": int(num(r, "conc", 0)),
                "per_bytes": per, "base": base, "hold": hold, "dropped": int(num(r, "dropped", 0)),
                "err": int(num(r, "err", 0))}

    def run_ratio(wl, srv_x, srv_y):
        """The median of the per-run ratios: run k of each server ran back to
        back with the others' run k, so a pair shares the machine's state
        (other load) better than the two medians do."""
        xs = [num(r, "rate") for r in runs.get((wl, srv_x), [])]
        ys = [num(r, "rate") for r in runs.get((wl, srv_y), [])]
        pairs = [x / y for x, y in zip(xs, ys) if x is not None and y]
        if not pairs or len(xs) != len(ys):
            x, y = med(wl, srv_x, "rate"), med(wl, srv_y, "rate")
            return x / y if x is not None and y else None
        return statistics.median(pairs)

    def fmt_ratio(r, pct=False):
        if r is None:
            return "–"
        return f"{100 * r:.0f} %" if pct else f"{r:.2f}×"

    def verdict(ok):
        return "met" if ok else "**missed**"

    rows = []   # workload, limit, portcullisd, postfix, vs limit, vs postfix, target
    for c in (64, 256):
        wl = f"greet{c}"
        lim, pd, pf = med(wl, "limit", "rate"), med(wl, "portcullisd", "rate"), med(wl, "postfix", "rate")
        r_lim, r_pf = run_ratio(wl, "portcullisd", "limit"), run_ratio(wl, "portcullisd", "postfix")
        tgt = "≥ 80 % of limit"
        if r_lim is not None:
            tgt += f": {verdict(r_lim >= 0.8)}"
        rows.append([f"blocked client (greeting, QUIT), conns/s at {c} concurrent", fmt_rate(lim),
                     fmt_rate(pd), fmt_rate(pf), fmt_ratio(r_lim, True), fmt_ratio(r_pf), tgt])
        limq = med(wl, "limitquit", "rate")
        if limq is not None:
            r_q = run_ratio(wl, "portcullisd", "limitquit")
            tgt = "≥ 1.0× (issue 15)" + (f": {verdict(r_q >= 1.0)}" if r_q is not None else "")
            rows.append([f"same, against bench-limit -q (waits for QUIT, answers 221) at {c}",
                         fmt_rate(limq), fmt_rate(pd), "–", fmt_ratio(r_q), "–", tgt])
    # Blocked clients on a /tls listener (issue 11): every connection the
    # generator made per second (served a 554 inside TLS, or closed at once
    # past the handshake bounds), and the server's CPU per connection,
    # against the plain 554 of the same run.
    def per_conn(wl):
        rs = runs.get((wl, "portcullisd"), [])
        conns = [num(r, "conns", 0) / num(r, "secs", 1) for r in rs if num(r, "secs")]
        cpu = [num(r, "cpu_s", 0) * 1e6 / num(r, "conns", 1) for r in rs if num(r, "conns")]
        return (statistics.median(conns) if conns else None, statistics.median(cpu) if cpu else None)
    plain_rate, plain_cpu = per_conn("greettls-plain")
    for wl, label in (("greettls-plain", "blocked client, plain 554: conns/s, CPU µs per conn"),
                      ("greettls-one", "blocked client on /tls, one prefix (10 handshakes/min, rest closed)"),
                      ("greettls-many", "blocked clients on /tls, 200 addresses (≤ 100 handshakes/s/worker)")):
        rate, cpu = per_conn(wl)
        if rate is None:
            continue
        rel = f"{cpu / plain_cpu:.1f}× the plain CPU/conn" if cpu and plain_cpu else "–"
        rows.append([label, "–", f"{fmt_rate(rate)} conns/s, {cpu or 0:.0f} µs CPU/conn", "–", "–", "–", rel])
    for wl, label in (("session-cheap", "AUTH PLAIN + 10 KB message, msgs/s at 64 (cheap hash ¹)"),
                      ("session-yescrypt", "same, yescrypt user on both sides"),
                      ("session-tls", "same with STARTTLS (cheap hash)")):
        pd, pf = med(wl, "portcullisd", "rate"), med(wl, "postfix", "rate")
        if pd is None and pf is None:
            continue
        r_pf = run_ratio(wl, "portcullisd", "postfix")
        tgt = ""
        if wl == "session-cheap":
            tgt = "≥ 2× Postfix" + (f": {verdict(r_pf >= 2)}" if r_pf is not None else "")
        rows.append([label, "–", fmt_rate(pd), fmt_rate(pf), "–", fmt_ratio(r_pf), tgt])
    pdr, pf = med("session-relay", "portcullisd-relay", "rate"), med("session-relay", "postfix", "rate")
    if pdr is not None:
        r = run_ratio("session-relay", "portcullisd-relay", "postfix")
        tgt = "≥ 1.0× Postfix alone" + (f": {verdict(r >= 1.0)}" if r is not None else "")
        rows.append(["relay: client → portcullisd (Dovecot auth) → Postfix, vs client → Postfix "
                     "(Dovecot SASL), msgs/s at 64 (cheap hash)", "–", fmt_rate(pdr), fmt_rate(pf), "–",
                     fmt_ratio(r), tgt])
    pdr, pf = med("authdovecot", "portcullisd-relay", "rate"), med("authdovecot", "postfix", "rate")
    if pdr is not None or pf is not None:
        rows.append(["AUTH through Dovecot (EHLO, AUTH PLAIN, QUIT): portcullisd (`backend = dovecot`) vs "
                     "Postfix smtpd (Dovecot SASL), same Dovecot, conns/s at 64 ³", "–", fmt_rate(pdr),
                     fmt_rate(pf), "–", fmt_ratio(run_ratio("authdovecot", "portcullisd-relay", "postfix")),
                     "report (issue 12)"])
    for wl, srv, label in (("bigmsg-maildir", "portcullisd", "Maildir"), ("bigmsg-relay", "portcullisd-relay",
                                                                         "relay to Postfix")):
        rs = runs.get((wl, srv))
        if not rs or "failed" in rs[-1]:
            continue
        b = rs[-1]
        rows.append([f"memory per session in DATA ({label}): {int(num(b, 'n', 0))} sessions x "
                     f"{num(b, 'size', 0) / 1e6:.0f} MB at once, peak RSS growth per session ⁴", "–",
                     f"{num(b, 'per_session_kb', 0) / 1024:.2f} MB per session "
                     f"({int(num(b, 'ok', 0))}/{int(num(b, 'n', 0))} accepted)", "–", "–", "–",
                     "bounded, ≪ message size (issue 12)"])
    pd, pf = med("authfail", "portcullisd", "rate"), med("authfail", "postfix", "rate")
    if pd is not None or pf is not None:
        rows.append(["wrong password (AUTH → 535), conns/s at 64, 1 run ²", "–", fmt_rate(pd), fmt_rate(pf),
                     "–", fmt_ratio(run_ratio("authfail", "portcullisd", "postfix")), "–"])
    ip, ipf = idle("idle-plain", "portcullisd"), idle("idle-plain", "postfix")
    if ip or ipf:
        def held(i):
            if i and i["per_bytes"]:
                kb = i["per_bytes"] / 1024
                return f"{i['at_start']:,} held, " + (f"{kb:,.0f} KB each" if kb >= 100 else f"{kb:.2f} KB each")
            return (
                f"{i['at_start']:,} held" if i else "–")
        tgt = "100,000 held, ≤ 4 KB each"
        capped = any(n.startswith("idle-plain:") for n in run_notes)
        if ip and ip["per_bytes"] is not None:
            if capped and ip["at_start"] < 100000:
                tgt += (f": ≤ 4 KB {verdict(ip['per_bytes'] <= 4096)}; 100,000 not measurable on this "
                        "machine (descriptor limit, see the note)")
            else:
                tgt += f": {verdict(ip['at_start'] >= 100000 and ip['per_bytes'] <= 4096)}"
        steps = [i for i in (idle("idle-plain-25pct", "portcullisd"), idle("idle-plain-50pct", "portcullisd"), ip)
                 if i and i["per_bytes"]]
        if len(steps) > 1:
            tgt += ("; per connection at " + " / ".join(f"{i['at_start']:,}" for i in steps) + " held: " +
                    " / ".join(f"{i['per_bytes']:,.0f} B" for i in steps))
        less = "–"
        if ip and ipf and ip["per_bytes"] and ipf["per_bytes"]:
            less = f"{ipf['per_bytes'] / ip['per_bytes']:,.0f}× less memory"
        rows.append(["idle plain connections: held, daemon memory (PSS) per connection", "–", held(ip),
                     held(ipf), "–", less, tgt])
    it = idle("idle-tls", "portcullisd")
    if it:
        rows.append(["idle TLS connections (after STARTTLS): memory per connection", "–",
                     f"{it['at_start']:,} held, {it['per_bytes'] / 1024:.1f} KB each" if it["per_bytes"] else "–",
                     "–", "–", "–", "report"])
    ib = idle("idle-blocked", "portcullisd")
    if ib:
        tgt = "≤ 1 KB each"
        if ib["per_bytes"] is not None:
            tgt += f": {verdict(ib['per_bytes'] <= 1024)}"
        rows.append(["blocked client that never sends QUIT: memory per connection", "–",
                     f"{ib['at_start']:,} held, {ib['per_bytes']:.0f} B each" if ib["per_bytes"] is not None else "–",
                     "–", "–", "–", tgt])
    if guard:
        worst = max(num(guard, k, 0) for k in ("hit_ns", "miss_ns", "hit6_ns", "miss6_ns", "connect_hit_ns",
                                               "miss_two_lengths_ns", "mt_ns"))
        rows.append([f"accept-time block check, {int(num(guard, 'blocks', 0)):,} blocks: CPU ns per check (hit / miss / worst case)",
                     "–", f"{num(guard, 'hit_ns'):.0f} / {num(guard, 'miss_ns'):.0f} / {worst:.0f} ns", "–", "–", "–",
                     f"< 1 µs: {verdict(worst < 1000)}"])
        rows.append(["memory per blocked prefix (entry, block record, index)", "–",
                     f"{num(guard, 'bytes_per_prefix'):.0f} B (entry {int(num(guard, 'entry_size', 0))} B)",
                     "–", "–", "–", "report"])
        if num(guard, "index_bytes_per_prefix", 0):
            rows.append(["accept-time index: bytes per blocked prefix", "–",
                         f"{num(guard, 'index_bytes_per_prefix'):.1f} B", "–", "–", "–",
                         f"≤ 64 B (issue 15): {verdict(num(guard, 'index_bytes_per_prefix') <= 64)}"])
            worst15 = max(num(guard, k, 0) for k in ("hit_ns", "miss_ns", "hit6_ns", "miss6_ns",
                                                     "miss_two_lengths_ns", "hit_two_lengths_ns",
                                                     "hit6_two_lengths_ns", "miss6_two_lengths_ns"))
            rows.append(["accept-time check, worst of hit/miss IPv4/IPv6 with one and two lengths", "–",
                         f"{worst15:.0f} ns", "–", "–", "–", f"≤ 150 ns (issue 15): {verdict(worst15 <= 150)}"])
            rows.append(["counting entry: bytes per tracked prefix (table / resident)", "–",
                         f"{num(guard, 'tracked_bytes_per_prefix'):.1f} / {num(guard, 'tracked_rss_per_prefix'):.1f} B",
                         "–", "–", "–",
                         f"≤ 96 B (issue 15): {verdict(max(num(guard, 'tracked_bytes_per_prefix'), num(guard, 'tracked_rss_per_prefix')) <= 96)}"])

    head = ["workload", "bench-limit", "portcullisd", f"Postfix {a.postfix_version}", "portcullisd / limit",
            "portcullisd / Postfix", "target (issue 4)"]

    def md_table(head, rows):
        out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        return "\n".join(out)

    detail_head = ["workload", "server", "runs", "rate (median)", "p50 ms", "p99 ms", "ok", "errors",
                   "reply codes (all runs)", "error kinds", "unfinished", "PSS mid-run (median)"]
    detail = []
    order = ["greet64", "greet256", "greettls-plain", "greettls-one", "greettls-many", "session-cheap",
             "session-yescrypt", "session-tls", "session-relay", "authdovecot", "authfail"]
    for wl in order:
        for srv in ("limit", "limitquit", "portcullisd", "portcullisd-relay", "postfix"):
            rs = runs.get((wl, srv))
            if not rs:
                continue
            failed = sum(1 for r in rs if "failed" in r)
            pss = med(wl, srv, "pss_kb")
            detail.append([wl, srv, f"{len(rs)}" + (f" ({failed} failed)" if failed else ""),
                           fmt_rate(med(wl, srv, "rate")),
                           f"{med(wl, srv, 'p50_ms') or 0:.2f}", f"{med(wl, srv, 'p99_ms') or 0:.2f}",
                           f"{sum(int(num(r, 'ok', 0)) for r in rs):,}",
                           f"{sum(int(num(r, 'err', 0)) for r in rs):,}",
                           fmt_counts(merge_counts(r.get("codes", "-") for r in rs)),
                           fmt_counts(merge_counts(r.get("errs", "-") for r in rs), drop_zero=True),
                           f"{sum(int(num(r, 'unfinished', 0)) for r in rs):,}",
                           f"{pss / 1024:.1f} MB" if pss else "–"])
    idle_head = ["workload", "server", "wanted", "open after ramp", "open at end", "dropped", "errors",
                 "PSS before", "PSS holding", "per connection"]
    idle_rows = []
    for wl in ("idle-plain-25pct", "idle-plain-50pct", "idle-plain", "idle-tls", "idle-blocked"):
        for srv in ("portcullisd", "postfix"):
            i = idle(wl, srv)
            if not i:
                continue
            idle_rows.append([wl, srv, f"{i['conc']:,}", f"{i['at_start']:,}", f"{i['open']:,}", i["dropped"],
                              i["err"], f"{i['base'] / 1024:.1f} MB", f"{i['hold'] / 1024:.1f} MB",
                              f"{i['per_bytes']:,.0f} B" if i["per_bytes"] is not None else "–"])

    big_head = ["workload", "server", "sessions", "message", "accepted", "RSS before", "RSS peak (sampled / VmHWM)",
                "PSS before → peak", "RSS growth per session", "seconds"]
    big_rows = []
    for wl, srv in (("bigmsg-maildir", "portcullisd"), ("bigmsg-relay", "portcullisd-relay")):
        for b in runs.get((wl, srv), []):
            if "failed" in b:
                big_rows.append([wl, srv, "failed", "–", "–", "–", "–", "–", "–", "–"])
                continue
            mb = lambda k: f"{num(b, k, 0) / 1024:.1f} MB"  # noqa: E731
            big_rows.append([wl, srv, int(num(b, "n", 0)), f"{num(b, 'size', 0) / 1e6:.1f} MB",
                             f"{int(num(b, 'ok', 0))}/{int(num(b, 'n', 0))}", mb("base_rss_kb"),
                             f"{mb('peak_rss_kb')} / {mb('hwm_kb')}",
                             f"{mb('base_pss_kb')} → {mb('peak_pss_kb')}",
                             f"{num(b, 'per_session_kb', 0) / 1024:.2f} MB", f"{num(b, 'secs', 0):.1f}"])
    m = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = md_table(head, rows)
    notes = [
        "¹ portcullisd's users file holds an md5-crypt (`$1$`) hash, the cheapest crypt(5) scheme it accepts; "
        "Dovecot's passwd-file holds the password in its `{PLAIN}` scheme (no hashing at all), as in the "
        "issue's reference figures. The yescrypt row gives both servers the same yescrypt hash.",
        "² portcullisd with `failure_delay = 1s`; Postfix with its default `smtpd_error_sleep_time`. "
        "The guard limits are raised in the bench config, so these clients are not blocked.",
        "³ One private Dovecot (auth service only, passwd-file with a `{PLAIN}` password, no auth cache) "
        "answers both: portcullisd over its auth-client socket, Postfix over private/auth. portcullisd "
        "here is the relay-mode instance; no message is sent. PSS of the Postfix side includes Dovecot's.",
        "⁴ bench/bigmsg.py: the sessions log in, reach DATA's 354, then all send their bodies at once "
        "while the daemon's RSS and PSS are sampled every 20 ms; peak RSS is the higher of the samples and "
        "VmHWM (reset before the run). Growth per session = (peak RSS − RSS before) / sessions: a daemon "
        "that held each message would grow by about the message size per session.",
    ]
    notes += [f"Note: {n}" for n in run_notes]
    text_out = [f"Portcullis bench, {now}: {m['nproc']} cores ({m['cpu']}), {a.runs} runs x {a.seconds} s, "
                f"median; {a.elapsed} s in all", "", summary, "", *notes, ""]
    if detail:
        text_out += [md_table(detail_head, detail), ""]
    if idle_rows:
        text_out += [md_table(idle_head, idle_rows), ""]
    if big_rows:
        text_out += [md_table(big_head, big_rows), ""]
    for what, why in skipped:
        text_out.append(f"SKIPPED {what}: {why}")
    print("\n".join(text_out))

    if a.out == "-":
        return 0
    kept = ""
    if os.path.exists(a.out):
        with open(a.out) as f:
            old = f.read()
        if KEEP_MARKER in old:
            kept = old.split(KEEP_MARKER, 1)[1]
    env = f"BENCH_RUNS={a.runs} BENCH_SECONDS={a.seconds}"
    doc = [
        "# Benchmarks",
        "",
        "Written by `make bench` (bench/run.sh); the figures below are the latest run. "
        "Only ratios measured in one sitting count: every server here ran on the same machine, "
        "at the same time, against the same load generator.",
        "",
        f"- date: {now}",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['mem']} RAM, Linux {m['kernel']}",
        f"- software: Postfix {a.postfix_version}, Dovecot {a.dovecot_version}, {m['openssl']}",
        f"- method: {a.runs} runs x {a.seconds} s per workload and server, interleaved; the median run counts; "
        f"the load generator (`smtp-loadgen`, 1 thread unless noted) shares the cores with the server; "
        f"the whole bench took {a.elapsed} s",
        f"- ports: {a.ports} (bench-limit, portcullisd, Postfix), all on 127.0.0.1",
        f"- load average at the start / end: {a.loadavg} (other work on the machine makes runs noisy; "
        "ratios are the median of the per-run ratios, each run's servers measured back to back)",
        "",
        "## Summary",
        "",
        summary,
        "",
        *notes,
        "",
        "Rates are the median run; a ratio is the median over the runs of portcullisd's rate divided by the "
        "other server's rate in the same round. "
        "Memory is PSS (proportional set size: shared pages divided among their sharers), summed from "
        "`/proc/PID/smaps_rollup` over all processes of a server: portcullisd's one process; Postfix's "
        "master and all its children plus the private Dovecot's processes (its SASL). Per-connection "
        "figures are (PSS while holding − PSS before the ramp) / connections held.",
        "",
    ]
    if detail:
        doc += ["## Every run (medians; counts summed over the runs)", "", md_table(detail_head, detail), ""]
    if idle_rows:
        doc += ["## Idle connections", "", md_table(idle_head, idle_rows), ""]
    if big_rows:
        doc += ["## Memory per session in DATA (big messages)", "", md_table(big_head, big_rows), ""]
    if guard_text:
        doc += ["## Guard micro-benchmark", "", "```", guard_text.strip(), "```", ""]
    if a.spray and os.path.exists(a.spray) and os.path.getsize(a.spray):
        with open(a.spray) as f:
            doc += ["## Spray (issue 15): many addresses through PROXY headers", "", "```",
                    f.read().strip(), "```", ""]
    if skipped:
        doc += ["## Skipped", ""] + [f"- {w}: {why}" for w, why in skipped] + [""]
    doc += [
        "## Commands",
        "",
        "```",
        f"{a.invocation}        # this run",
        f"{env} make bench        # the same from a fresh clone: builds, installs postfix + dovecot-core "
        "(root), runs bench/run.sh with the build in ./build",
        "```",
        "",
        "The servers, as bench/run.sh starts them (configs are written into a fresh `mktemp -d` directory):",
        "",
        "```",
        "bench-limit PORT                              # one SO_REUSEPORT epoll loop per core: accept4, write 554, close",
        "portcullisd -c DIR/portcullisd/portcullis.conf  # guard limits raised, see bench/run.sh",
        "portcullisctl -c DIR/portcullisd/portcullis.conf block 127.0.0.1 --permanent --reason bench",
        "postfix -c DIR/postfix/conf start             # private instance: own queue/data dirs, inet 127.0.0.1:PORT only",
        "dovecot -c DIR/dovecot/dovecot.conf -F        # auth service only, socket in Postfix's private/auth",
        "```",
        "",
        "The load, exactly as run (first run of each; the others are identical):",
        "",
        "```",
    ]
    for wl, srv, cmd in commands:
        doc.append(f"{wl:17} {srv:12} {cmd}")
    doc += ["```", "", KEEP_MARKER]
    body = "\n".join(doc) + "\n"
    body += kept if kept else "\n"
    with open(a.out, "w") as f:
        f.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
