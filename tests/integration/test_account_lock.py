"""Account locks (issue 14, SPEC §4/§5): failures for one account summed
over all addresses lock it against unfamiliar addresses only. A botnet
spraying one account from six addresses (one try each, far below any
address limit) locks it; the owner, from an address that logged in before,
still logs in; an unfamiliar address gets 535 even with the right password
(and that counts toward the address); the support desk sees and lifts the
lock; the lock survives kill -9."""

from guardutil import ALICE, Conn, PLAIN_AUTH_ALL, proxy_v1, ts, wait_until

ACCOUNT = {"account_fail_limit": "6", "account_fail_window": "10m",
           "account_lock": "1h", "familiar_for": "30d"}
LOCK_KEYS = {"account", "state", "reason", "started_at", "expires_at", "lifted_at",
             "lifted_by", "lift_reason", "first_event_at", "last_event_at", "events",
             "note", "node"}
ACCOUNT_KEYS = {"account", "state", "lock", "last_lock", "failures", "familiar", "locks"}
OWNER = "127.0.0.2"
BOTS = [f"127.0.0.{i}" for i in range(10, 16)]
STRANGER = "127.0.0.20"


def auth(d, source, user, password, header=None):
    c = Conn(d.port, source=source, header=header)
    try:
        assert c.greeting.code == 220, c.greeting
        c.ehlo()
        return c.auth_plain(user, password)
    finally:
        c.quit()


def check_lock_shape(lock):
    assert LOCK_KEYS <= set(lock), f"LOCK lacks {LOCK_KEYS - set(lock)}: {lock}"
    assert "address" not in lock, lock
    assert lock["state"] in ("locked", "lifted", "expired"), lock
    assert lock["reason"] in ("account_failures", "manual"), lock
    ts(lock["started_at"])
    ts(lock["expires_at"])


def account(d, name=ALICE[0]):
    doc = d.ctl_json("account", name)
    assert set(doc) == ACCOUNT_KEYS, doc
    for k in ("lock", "last_lock"):
        if doc[k] is not None:
            check_lock_shape(doc[k])
    for lock in doc["locks"]:
        check_lock_shape(lock)
    return doc


def lock_alice(d):
    """The owner logs in from OWNER, then six bots fail once each."""
    assert auth(d, OWNER, *ALICE).code == 235
    start = d.mark()
    for i, bot in enumerate(BOTS):
        r = auth(d, bot, ALICE[0], f"spray-{i}")
        assert r.line.startswith("535 5.7.8"), r
    d.wait_log(r"event=account_lock\b.*account=alice@example\.test", start=start)
    return start


def test_spray_from_six_addresses_locks_for_strangers_only(start_daemon):
    d = start_daemon(guard=ACCOUNT)
    start = lock_alice(d)
    line = d.log_lines("account_lock", start)[0]
    assert line["reason"] == "account_failures" and line["events"] == "6", line

    doc = account(d, "Alice@Example.test")           # any case: one account
    assert doc["account"] == "alice@example.test", doc
    assert doc["state"] == "locked", doc
    assert doc["failures"] == 0, doc                  # the lock reset the count
    assert doc["familiar"] == 1, doc
    assert doc["lock"]["events"] == 6 and doc["lock"]["reason"] == "account_failures", doc
    assert doc["last_lock"] == doc["lock"] and doc["locks"] == [doc["lock"]], doc
    # no address reached a limit of its own
    for bot in BOTS:
        assert d.ctl_json("status", bot)["state"] == "clear"

    # the right password from an unfamiliar address: 535, counted for that address
    r = auth(d, STRANGER, *ALICE)
    assert r.line.startswith("535 5.7.8"), r
    st = d.ctl_json("status", STRANGER)
    assert st["counters"]["auth_failures"] == 1, st
    assert account(d)["failures"] == 0                # not toward the account
    # the owner's own address still logs in
    assert auth(d, OWNER, *ALICE).code == 235
    # other accounts are untouched
    assert auth(d, STRANGER, "bob@example.test", "bob-secret").code == 235

    # text for the support desk
    text = d.ctl("account", ALICE[0], check=True).stdout
    assert "locked" in text and "account_failures" in text, text


def test_unlock_lets_strangers_in_again(start_daemon):
    d = start_daemon(guard=ACCOUNT)
    lock_alice(d)
    assert auth(d, STRANGER, *ALICE).code == 535
    start = d.mark()
    cp = d.ctl("unlock", "ALICE@example.test", "--reason", "ticket 4711")
    assert cp.returncode == 0, cp.stderr
    line = d.wait_log(r"event=account_unlock\b.*$", start=start).group(0)
    assert "account=alice@example.test" in line and "ticket 4711" in line, line
    assert auth(d, STRANGER, *ALICE).code == 235
    doc = account(d)
    assert doc["state"] == "clear" and doc["lock"] is None, doc
    assert doc["last_lock"]["state"] == "lifted", doc
    assert doc["last_lock"]["lift_reason"] == "ticket 4711", doc
    assert doc["last_lock"]["lifted_by"], doc
    ts(doc["last_lock"]["lifted_at"])
    # nothing left to lift: exit 1 with a message
    cp = d.ctl("unlock", ALICE[0])
    assert cp.returncode == 1 and cp.stderr.strip(), (cp.returncode, cp.stderr)


def test_repeated_failures_count_once_toward_the_account(start_daemon):
    d = start_daemon(guard=ACCOUNT)
    c = Conn(d.port, source="127.0.0.30")
    c.ehlo()
    for _ in range(10):
        assert c.auth_plain(ALICE[0], "stale").line.startswith("535 5.7.8")
    c.quit()
    doc = account(d)
    assert doc["state"] == "clear" and doc["failures"] == 1, doc


def test_lock_and_familiar_survive_kill9(start_daemon):
    d = start_daemon(guard=ACCOUNT)
    lock_alice(d)
    before = account(d)
    d.kill9()
    d.restart()
    after = account(d)
    assert after["state"] == "locked", after
    assert after["lock"] == before["lock"], (before, after)
    assert after["familiar"] == 1, after
    assert auth(d, STRANGER, *ALICE).line.startswith("535 5.7.8")
    assert auth(d, OWNER, *ALICE).code == 235


def test_proxy_addresses_count_as_the_clients(start_daemon):
    d = start_daemon(guard=ACCOUNT, server={"proxy_protocol": "yes", "proxy_from": "127.0.0.1/32"},
                     tls={"plain_auth_from": PLAIN_AUTH_ALL})
    for i in range(6):
        r = auth(d, "127.0.0.1", ALICE[0], f"spray-{i}", header=proxy_v1(f"203.0.113.{10 + i}"))
        assert r.line.startswith("535 5.7.8"), r
    wait_until(lambda: account(d)["state"] == "locked", what="alice locked")
    r = auth(d, "127.0.0.1", *ALICE, header=proxy_v1("198.51.100.7"))
    assert r.line.startswith("535 5.7.8"), r


def test_account_locks_off(start_daemon):
    d = start_daemon(guard=dict(ACCOUNT, account_fail_window="0"))
    for i, bot in enumerate(BOTS):
        assert auth(d, bot, ALICE[0], f"spray-{i}").code == 535
    doc = account(d)
    assert doc["state"] == "clear", doc
    assert auth(d, STRANGER, *ALICE).code == 235


def test_http_account_and_unlock(start_daemon, tmp_path):
    from httputil import get, metrics, m, post, start_http_daemon
    d = start_http_daemon(start_daemon, tmp_path, guard=ACCOUNT)
    lock_alice(d)
    r = get(d, "/api/v1/account?name=Alice%40example.test")
    assert r.status == 200, r.body
    doc = r.json()
    assert doc == account(d), "the API's document is portcullisctl's"
    assert doc["state"] == "locked"
    assert m(metrics(d)[0], "portcullis_account_locks_active") == 1
    # bad input
    assert get(d, "/api/v1/account").status == 400
    assert post(d, "/api/v1/unlock", {"ip": "127.0.0.1"}).status == 400
    assert get(d, "/api/v1/unlock?name=x").status == 405
    # the lift, recorded with the token's name
    r = post(d, "/api/v1/unlock", {"name": ALICE[0], "reason": "ticket 99"})
    assert r.status == 200, r.body
    lock = r.json()["lock"]
    check_lock_shape(lock)
    assert lock["state"] == "lifted" and lock["lifted_by"] == "desk", lock
    assert lock["lift_reason"] == "ticket 99", lock
    assert m(metrics(d)[0], "portcullis_account_locks_active") == 0
    # nothing in force now
    assert post(d, "/api/v1/unlock", {"name": ALICE[0]}).status == 404
