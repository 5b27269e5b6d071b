"""`portcullisd -t`: configuration check, errors naming file, line and key."""

import re
import subprocess

import pytest

from conftest import BUILD, REPO, T, Daemon


@pytest.fixture
def conf(tmp_path, tls_files):
    """A Daemon object that is never started: only its files are used."""
    return Daemon(tmp_path / "cfg", tls_files)


def check(conf_path):
    cp = subprocess.run([str(BUILD / "portcullisd"), "-t", "-c", str(conf_path)],
                        capture_output=True, timeout=30 * T)
    return cp.returncode, (cp.stdout + cp.stderr).decode("utf-8", "replace")


def line_of(conf, needle):
    for i, line in enumerate(conf.conf_path.read_text().splitlines(), 1):
        if line.strip() == needle:
            return i
    raise AssertionError(f"{needle!r} not in the config")


def test_good_config_exits_0(conf):
    rc, out = check(conf.conf_path)
    assert rc == 0, out


def test_check_does_not_start_serving(conf):
    rc, out = check(conf.conf_path)
    assert rc == 0, out
    assert "event=ready" not in out


def test_example_config_is_valid():
    example = REPO / "etc" / "portcullis.conf"
    if not example.exists():
        pytest.skip("no etc/portcullis.conf next to the build")
    rc, out = check(example)
    # the demo certificate, var/users and var/tokens may not exist yet (make run makes them)
    assert rc == 0 or re.search(r"cert|key|var/users|var/tokens", out), out


BAD = [
    ("server", "max_recipients", "lots"),
    ("server", "max_recipients", "-1"),
    ("server", "max_message_size", "25Q"),
    ("server", "timeout_command", "soon"),
    ("server", "timeout_data", "10 minutes"),
    ("server", "workers", "many"),
    ("server", "listen", "127.0.0.1:99999"),
    ("server", "listen", "127.0.0.1:2525/carrier-pigeon"),
    ("server", "listen", "300.1.2.3:25"),
    ("server", "proxy_protocol", "maybe"),
    ("server", "proxy_from", "10.0.0.0/33"),
    ("tls", "require_tls_for_auth", "perhaps"),
    ("tls", "plain_auth_from", "127.0.0.0/8 bogus"),
    ("auth", "mechanisms", "PLAIN CRAM-MD5-OF-DOOM"),
    ("auth", "failure_delay", "1 fortnight"),
    ("guard", "auth_fail_limit", "five"),
    ("guard", "ban_durations", "15m forever"),
    ("guard", "ipv4_prefix", "33"),
    ("guard", "ipv6_prefix", "129"),
    ("store", "backend", "floppy"),
    ("delivery", "mode", "pigeon"),
    ("log", "level", "loud"),
    ("log", "format", "xml"),
    # unknown keys are errors
    ("server", "frobnicate", "1"),
    ("tls", "certificate", "/etc/ssl/x.pem"),
]


@pytest.mark.parametrize("section,key,value", BAD,
                         ids=[f"{s}.{k}={v}" for s, k, v in BAD])
def test_bad_value_names_file_line_key(conf, section, key, value):
    conf.write_config(**{section: {key: value}})
    line = line_of(conf, f"{key} = {value}")
    rc, out = check(conf.conf_path)
    assert rc == 1, out
    assert re.search(re.escape(conf.conf_path.name) + r":" + str(line) + r"\b", out), \
        f"no {conf.conf_path.name}:{line} in: {out!r}"
    assert key in out, out
    assert f"[{section}]" in out, out


def test_unknown_section_is_error(conf):
    with open(conf.conf_path, "a") as f:
        f.write("\n[frobnication]\nlevel = 11\n")
    n = conf.conf_path.read_text().splitlines().index("[frobnication]") + 1
    rc, out = check(conf.conf_path)
    assert rc == 1, out
    assert "frobnication" in out
    assert re.search(re.escape(conf.conf_path.name) + r":(%d|%d)\b" % (n, n + 1), out), out


def test_syntax_error_line(conf):
    with open(conf.conf_path, "a") as f:
        f.write("\n[log]\nthis line is not key value\n")
    n = conf.conf_path.read_text().splitlines().index("this line is not key value") + 1
    rc, out = check(conf.conf_path)
    assert rc == 1, out
    assert re.search(re.escape(conf.conf_path.name) + r":%d\b" % n, out), out


def test_missing_file(tmp_path):
    rc, out = check(tmp_path / "nope.conf")
    assert rc == 1, out
    assert "nope.conf" in out


def test_missing_cert_is_error(conf, tmp_path):
    conf.write_config(tls={"cert": str(tmp_path / "absent.pem")})
    rc, out = check(conf.conf_path)
    assert rc == 1, out
    assert "absent.pem" in out or "cert" in out


def test_daemon_refuses_to_start_with_bad_config(conf):
    conf.write_config(server={"max_recipients": "lots"})
    cp = subprocess.run([str(BUILD / "portcullisd"), "-c", str(conf.conf_path)],
                        capture_output=True, timeout=30 * T)
    assert cp.returncode != 0
    assert "max_recipients" in (cp.stdout + cp.stderr).decode()


def test_sizes_and_durations_accepted(conf):
    conf.write_config(server={"max_message_size": "512K", "timeout_command": "45s",
                              "timeout_data": "2h"},
                      auth={"failure_delay": "200ms"},
                      guard={"ban_durations": "15m 1h 24h 30d"})
    rc, out = check(conf.conf_path)
    assert rc == 0, out


def test_check_lists_every_problem(conf):
    """issue 11 item 14: -t reports every problem, each FILE:LINE: [section] key."""
    conf.write_config(server={"max_recipients": "lots", "timeout_data": "soon"},
                      log={"level": "loud"}, guard={"no_such_key": "1"})
    rc, out = check(conf.conf_path)
    assert rc == 1, out
    name = re.escape(str(conf.conf_path))
    for section, key, needle in (("server", "max_recipients", "max_recipients = lots"),
                                 ("server", "timeout_data", "timeout_data = soon"),
                                 ("log", "level", "level = loud"),
                                 ("guard", "no_such_key", "no_such_key = 1")):
        n = line_of(conf, needle)
        assert re.search(rf"^{name}:{n}: \[{section}\] {key}: ", out, re.M), (needle, out)
    assert len(out.strip().splitlines()) == 4, out
