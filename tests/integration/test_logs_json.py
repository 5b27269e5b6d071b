"""[log] format = json: every line one JSON object in valid UTF-8, whatever
bytes a client sent; text that is UTF-8 stays as it was."""

import base64
import json


def json_lines(d):
    with open(d.log_path, "rb") as f:
        raw = f.read()
    lines = [ln for ln in raw.split(b"\n") if ln]
    # strict: a byte that is not UTF-8 fails here
    return [json.loads(ln.decode("utf-8")) for ln in lines]


def test_json_log_stays_valid_utf8_for_any_user_name(start_daemon):
    d = start_daemon(log={"format": "json", "level": "info"},
                     auth={"failure_delay": "0s"}, guard={"auth_fail_limit": "100"})
    users = [b"\xff\xfe\x80user@example.test",     # not UTF-8 at all
             b"jos\xc3\xa9@example.test",            # UTF-8: kept as it is
             b"cut\xe2\x82@example.test",            # a character cut short
             b"q\"uote\\back@example.test"]
    with d.raw() as c:
        assert c.read_reply().code == 220
        c.ehlo()
        for u in users:
            r = c.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0" + u + b"\0wrong-password"))
            assert r.code == 535, r
    d.wait_log(r'"event":"auth".*back@example')
    entries = json_lines(d)
    assert entries and all(isinstance(e, dict) and "event" in e for e in entries), entries
    logged = [e["user"] for e in entries if e.get("event") == "auth" and "user" in e]
    # a byte that is not part of a UTF-8 character reads back as U+00XX
    assert "\u00ff\u00fe\u0080user@example.test" in logged, logged
    assert "cut\u00e2\u0082@example.test" in logged, logged
    assert "jos\u00e9@example.test" in logged, logged
    assert "q\"uote\\back@example.test" in logged, logged
