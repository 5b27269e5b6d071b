"""/metrics (SPEC §9): Prometheus text 0.0.4 that `promtool check metrics`
accepts, no address or account in any label, counters that move by
exactly what scripted SMTP traffic did, sessions by state while clients
are held in each, and the health of the auth backend and the next hop
with a real Dovecot killed and started again."""

import re
import shutil
import subprocess

import pytest

from guardutil import fail_auth, greeting_of
from httputil import m, metrics, post, start_http_daemon
from mtautil import Dovecot, have_dovecot
from smtputil import T, wait_until

REQUIRED = [
    "portcullis_connections_total", "portcullis_rejected_connections_total",
    "portcullis_auth_total", "portcullis_messages_total", "portcullis_blocks_total",
    "portcullis_blocks_active", "portcullis_account_locks_active", "portcullis_sessions_open",
    "portcullis_store_up", "portcullis_build_info", "portcullis_tls_sessions_total",
    "portcullis_delivery_duration_seconds", "portcullis_reloads_total",
    "portcullis_sessions", "portcullis_auth_backend_up", "portcullis_reload_failures_total",
]
STATES = ("new", "proxy", "command", "auth", "data", "rejected", "closing")


@pytest.fixture
def d(start_daemon, tmp_path):
    return start_http_daemon(start_daemon, tmp_path, public=False,
                             guard={"auth_fail_limit": "3", "unauth_limit": "50"})


def test_promtool_accepts_and_families_present(d):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    _, text = metrics(d)
    cp = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                        text=True, timeout=30 * T)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    names = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for n in REQUIRED:
        assert n in names, f"{n} missing"
    assert all(n.startswith("portcullis_") for n in names)
    for n in names:
        if re.search(rf"^# TYPE {n} counter$", text, re.M):
            assert n.endswith("_total"), n


def test_no_address_or_account_in_labels(d):
    c = fail_auth(d.port, 3, source="127.0.0.3")
    c.close()
    post(d, "/api/v1/block", {"ip": "127.0.0.4", "for": "1h"})
    _, text = metrics(d)
    labels = " ".join(re.findall(r"\{([^}]*)\}", text))
    assert "127.0.0" not in labels and "@" not in labels, labels


def test_counters_follow_smtp_traffic(d):
    before, _ = metrics(d)
    # two good sessions: AUTH, one message each; one of them over STARTTLS
    for tls in (False, True):
        s = d.authed(tls=tls)
        s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: hi\r\n\r\nhello\r\n")
        s.quit()
    # one unauthenticated MAIL, one message over the size limit
    c = d.raw()
    c.read_reply()
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@example.org>").code == 530
    assert c.cmd("MAIL FROM:<x@example.org> SIZE=999999999").code in (530, 552)
    c.quit()
    # three failed logins from 127.0.0.3 block it; its next connection gets 554
    c = fail_auth(d.port, 3, source="127.0.0.3")
    c.close()
    assert greeting_of(d.port, source="127.0.0.3").startswith("554")
    post(d, "/api/v1/block", {"ip": "127.0.0.4", "permanent": True})
    d.reload()

    after, _ = metrics(d)

    def diff(name, **labels):
        return m(after, name, **labels) - m(before, name, **labels)

    # the 554 to the blocked address is refused before a session exists
    assert diff("portcullis_connections_total") == 4
    assert diff("portcullis_auth_total", result="success") == 2
    assert diff("portcullis_auth_total", result="failure") == 3
    assert diff("portcullis_auth_total", result="tempfail") == 0
    assert diff("portcullis_messages_total", result="accepted") == 2
    assert diff("portcullis_messages_total", result="failed") == 0
    assert diff("portcullis_unauth_attempts_total") >= 1
    assert diff("portcullis_tls_sessions_total") == 1
    assert diff("portcullis_rejected_connections_total", reason="blocked") == 1
    assert diff("portcullis_blocks_total", reason="auth_failures") == 1
    assert diff("portcullis_blocks_total", reason="manual") == 1
    assert m(after, "portcullis_blocks_active", kind="temporary") == 1
    assert m(after, "portcullis_blocks_active", kind="permanent") == 1
    assert diff("portcullis_delivery_duration_seconds_count") == 2
    assert m(after, "portcullis_delivery_duration_seconds_bucket", le="+Inf") == \
        m(after, "portcullis_delivery_duration_seconds_count")
    assert diff("portcullis_reloads_total") == 1
    assert m(after, "portcullis_store_up", backend="sqlite") == 1
    assert m(after, "portcullis_auth_backend_up", backend="file") == 1
    assert diff("portcullis_reload_failures_total") == 0
    assert ("portcullis_relay_up", frozenset()) not in after, "Maildir mode has no next hop"
    assert m(after, "portcullis_sessions_open") == 0 or m(after, "portcullis_sessions_open") <= 1


def test_grafana_dashboard_uses_only_names_served(d, start_daemon, tmp_path):
    import json
    from conftest import REPO
    from smtputil import free_port
    _, text = metrics(d)
    served = set(re.findall(r"^(portcullis_\w+)", text, re.M))
    # and those only relay mode serves (the next hop is not tried until mail comes)
    relay = start_http_daemon(start_daemon, tmp_path, public=False, delivery={
        "mode": "relay", "relay": f"smtp://127.0.0.1:{free_port()}", "relay_tls": "none"})
    _, text = metrics(relay)
    assert re.search(r"^portcullis_relay_up 1$", text, re.M), text
    served |= set(re.findall(r"^(portcullis_\w+)", text, re.M))
    dash = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set(re.findall(r"portcullis_\w+", " ".join(exprs)))
    assert used and used <= served, used - served


def states(d):
    values, _ = metrics(d)
    return {st: m(values, "portcullis_sessions", state=st) for st in STATES}, values


def wait_states(d, timeout=15, **want):
    """Waits for these counts (every other state 0); returns all the values."""
    want = {st: want.get(st, 0) for st in STATES}
    seen = [None]

    def reached():
        seen[0] = states(d)
        return seen[0][0] == want
    try:
        wait_until(reached, timeout=timeout, what=f"sessions by state {want}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen {seen[0][0]}") from None
    return seen[0][1]


def test_sessions_by_state(d):
    post(d, "/api/v1/block", {"ip": "127.0.0.5", "for": "1h"})
    held = []
    try:
        # one client in each state: after the greeting, inside AUTH LOGIN,
        # inside DATA, and blocked (the 554, no session: the reject path)
        held.append(d.raw())
        held[-1].read_reply()
        for _ in range(2):
            c = d.raw()
            c.read_reply()
            c.ehlo()
            held.append(c)
        assert held[1].cmd("AUTH LOGIN").code == 334
        c = held[2]
        assert c.auth_plain("alice@example.test", d.users["alice@example.test"]).code == 235
        assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
        assert c.cmd("RCPT TO:<bob@example.test>").code == 250
        assert c.cmd("DATA").code == 354
        c = d.raw(source="127.0.0.5")
        held.append(c)
        assert c.read_reply().code == 554
        values = wait_states(d, command=1, auth=1, data=1, rejected=1)
        assert m(values, "portcullis_sessions_open") == 4
        # the message ends: that client is back at commands
        assert held[2].cmd("hello\r\n.").code == 250
        wait_states(d, command=2, auth=1, rejected=1)
    finally:
        for c in held:
            c.quit()
    # all gone: every gauge back at 0, none below
    wait_states(d, timeout=20)


# ---- the auth backend and the next hop, with a real Dovecot --------------

def test_auth_backend_and_relay_health_follow_dovecot(start_daemon, tmp_path):
    if not have_dovecot():
        pytest.skip("needs dovecot and root")
    users = {"alice@example.test": "alice-secret", "bob@example.test": "bob-secret"}
    dv = Dovecot(tmp_path, users).start()
    try:
        # Dovecot checks the passwords and takes the mail (LMTP)
        d = start_http_daemon(
            start_daemon, tmp_path, public=False, users={},
            auth={"backend": "dovecot", "dovecot_socket": str(dv.auth_socket),
                  "failure_delay": "0s"},
            delivery={"mode": "relay", "relay": f"lmtp:unix:{dv.lmtp_socket}",
                      "relay_tls": "none", "relay_timeout": "5s"})

        def health():
            v, _ = metrics(d)
            return (m(v, "portcullis_auth_backend_up", backend="dovecot"),
                    m(v, "portcullis_relay_up"))

        def login():
            c = d.raw()
            c.read_reply()
            c.ehlo()
            return c, c.auth_plain("alice@example.test", "alice-secret").code

        def send(c):
            assert c.cmd("MAIL FROM:<alice@example.test>").code == 250
            r = c.cmd("RCPT TO:<bob@example.test>")
            if r.code != 250:
                return r.code
            assert c.cmd("DATA").code == 354
            return c.cmd("Subject: up\r\n\r\nhello\r\n.").code

        c, code = login()
        assert code == 235
        assert send(c) == 250
        assert health() == (1, 1)
        # Dovecot gone: a session logged in before can no longer relay,
        # and a login gets 454; both gauges fall to 0
        dv.kill()
        assert send(c) == 451
        c.quit()
        c, code = login()
        assert code == 454
        c.quit()
        d.wait_log(r"event=auth_backend_down\b")
        d.wait_log(r"event=relay_down\b")
        assert health() == (0, 0)
        # Dovecot back: a login and a message bring both to 1 again
        dv.start()

        def delivered():
            c, code = login()
            try:
                return code == 235 and send(c) == 250
            finally:
                c.quit()
        wait_until(delivered, timeout=30, interval=0.3, what="a message after Dovecot came back")
        assert health() == (1, 1)
    finally:
        dv.cleanup()
