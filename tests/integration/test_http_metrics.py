"""/metrics (SPEC §9): Prometheus text 0.0.4 that `promtool check metrics`
accepts, no address or account in any label, and counters that move by
exactly what scripted SMTP traffic did."""

import re
import shutil
import subprocess

import pytest

from guardutil import fail_auth, greeting_of
from httputil import m, metrics, post, start_http_daemon
from smtputil import T, unverified_context

REQUIRED = [
    "portcullis_connections_total", "portcullis_rejected_connections_total",
    "portcullis_auth_total", "portcullis_messages_total", "portcullis_blocks_total",
    "portcullis_blocks_active", "portcullis_account_locks_active", "portcullis_sessions_open",
    "portcullis_store_up", "portcullis_build_info", "portcullis_tls_sessions_total",
    "portcullis_delivery_duration_seconds", "portcullis_reloads_total",
]


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
    assert m(after, "portcullis_sessions_open") == 0 or m(after, "portcullis_sessions_open") <= 1


def test_grafana_dashboard_uses_only_names_served(d):
    import json
    from conftest import REPO
    _, text = metrics(d)
    served = set(re.findall(r"^(portcullis_\w+)", text, re.M))
    dash = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set(re.findall(r"portcullis_\w+", " ".join(exprs)))
    assert used and used <= served, used - served
