"""Dovecot's answers that a real Dovecot gives only in trouble or in
special set-ups, from a scripted auth service (fault injection): OK with
nologin or proxy is a failure; FAIL temp, silence past 10 s and garbage are
454, never counted; the request carries what SPEC §8 lists."""

import base64

import pytest

from mtautil import FakeDovecot


@pytest.fixture
def fake_dovecot(tmp_path):
    made = []

    def make(answer, **kw):
        f = FakeDovecot(tmp_path / f"auth-{len(made)}", answer, **kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def daemon_with(start_daemon, fake, **guard):
    g = {"auth_fail_limit": "2"}
    g.update(guard)
    return start_daemon(users={}, auth={"backend": "dovecot", "dovecot_socket": fake.path,
                                        "failure_delay": "0s"}, guard=g)


def auth(d, user="alice@example.test", password="secret", tls=False):
    s = d.smtp()
    s.ehlo()
    code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(
        f"\0{user}\0{password}".encode()).decode())
    s.quit()
    return code, text


def test_ok_is_235_and_the_request_says_what_spec_lists(start_daemon, fake_dovecot):
    fake = fake_dovecot(lambda user: "OK\tuser=" + user)
    d = daemon_with(start_daemon, fake)
    assert auth(d)[0] == 235
    (req,) = fake.requests
    assert req[2] == "PLAIN"
    assert "service=smtp" in req and "no-penalty" in req
    assert "rip=127.0.0.1" in req and "lip=127.0.0.1" in req
    # loopback is in plain_auth_from: secured, as inside TLS
    assert "secured" in req
    resp = [x for x in req if x.startswith("resp=")][0][5:]
    assert base64.b64decode(resp) == b"\0alice@example.test\0secret"


@pytest.mark.parametrize("flag", ["nologin", "proxy"])
def test_ok_with_nologin_or_proxy_is_a_failure(start_daemon, fake_dovecot, flag):
    fake = fake_dovecot(lambda user: f"OK\tuser={user}\t{flag}\thost=10.0.0.9")
    d = daemon_with(start_daemon, fake, auth_fail_limit="1000")
    code, text = auth(d)
    assert (code, text[:5]) == (535, b"5.7.8"), (code, text)


@pytest.mark.parametrize("reply", ["FAIL\ttemp\treason=db down", "FAIL\tcode=temp_fail"])
def test_temporary_failure_is_454_and_never_counted(start_daemon, fake_dovecot, reply):
    fake = fake_dovecot(lambda user: reply)
    d = daemon_with(start_daemon, fake)      # auth_fail_limit = 2
    for _ in range(5):
        code, text = auth(d)
        assert (code, text[:5]) == (454, b"4.7.0"), (code, text)
    assert d.log_lines("block") == []


def test_plain_fail_is_535_and_counted(start_daemon, fake_dovecot):
    fake = fake_dovecot(lambda user: "FAIL\tuser=" + user)
    d = daemon_with(start_daemon, fake)      # auth_fail_limit = 2
    # two different wrong passwords: the same one again would be a repeat
    assert auth(d, password="guess-1")[0] == 535
    assert auth(d, password="guess-2")[0] == 535
    d.wait_log(r"event=block\b")


def test_no_answer_within_10s_is_454(start_daemon, fake_dovecot):
    fake = fake_dovecot(lambda user: None)
    d = daemon_with(start_daemon, fake)
    code, text = auth(d)
    assert (code, text[:5]) == (454, b"4.7.0"), (code, text)
    assert d.log_lines("block") == []


@pytest.mark.parametrize("garbage", [b"OK\tnot-an-id\n", b"FAIL\t1\treason=a\x01x\n",
                                     b"VERSION\t2\t0\n", b"x" * 20000 + b"\n"])
def test_garbage_from_dovecot_is_454_then_reconnects(start_daemon, fake_dovecot, garbage):
    answers = []

    def answer(user):
        answers.append(user)
        return garbage if len(answers) == 1 else "OK\tuser=" + user
    fake = fake_dovecot(answer)
    d = daemon_with(start_daemon, fake, auth_fail_limit="1000")
    code, text = auth(d)
    assert (code, text[:5]) == (454, b"4.7.0"), (code, text)
    # a new connection, and this time a proper answer
    assert auth(d)[0] == 235
    assert fake.connections >= 2
    d.wait_log(r"event=auth_backend_down\b.*error=\"?protocol error|event=auth_backend_down\b.*line too long")
    d.wait_log(r"event=auth_backend_up\b")


def test_reload_keeps_dovecot_and_can_move_it(start_daemon, fake_dovecot):
    a = fake_dovecot(lambda user: "OK\tuser=" + user)
    b = fake_dovecot(lambda user: "FAIL\tuser=" + user)
    d = daemon_with(start_daemon, a, auth_fail_limit="1000")
    assert auth(d)[0] == 235
    d.reload()
    assert auth(d)[0] == 235          # the same socket: the connection stays
    assert a.connections <= 2         # (one per worker at most)
    d.write_config(auth={"dovecot_socket": b.path})
    d.reload()
    assert auth(d)[0] == 535          # the new socket answers now
    assert len(b.requests) == 1
