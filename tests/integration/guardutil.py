"""Helpers for the guard, portcullisctl and PROXY protocol integration tests.

The raw SMTP client (Conn) and the greeting helpers are smtputil's,
re-exported here; this adds PROXY v1/v2 header builders, bounded polling,
RFC 3339 parsing and the shapes of portcullisctl's JSON. Only the standard
library; no mocks.
"""

import datetime as _dt
import ipaddress
import re
import socket
import struct
import time

from smtputil import (  # noqa: F401  (re-exported for the tests)
    ALICE, BLOCK_KEYS, COUNTER_KEYS, REJECT_TEXT, STATUS_KEYS, WRONG_PASSWORD, T, Closed, Conn,
    Reply, fail_auth, free_port, greeting_of, read_all_until_close, wait_greeting, wait_until,
)
from conftest import HOSTNAME
GREETING_554 = f"554 {HOSTNAME} {REJECT_TEXT}"
REPLY_421 = f"421 4.7.0 {HOSTNAME} {REJECT_TEXT}"

BOB = ("bob@example.test", "bob-secret")

# PROXY tests let the PROXY client addresses AUTH without TLS.
PLAIN_AUTH_ALL = "127.0.0.0/8 ::1/128 203.0.113.0/24 198.51.100.0/24 2001:db8::/32"

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")



def wait_expired(d, n, port=None, timeout=20):
    """Waits until the daemon has logged n event=expire lines in all and
    then serves a 220 again: the block is over, also for its expiry tick."""
    wait_until(lambda: len(d.log_lines("expire")) >= n, timeout=timeout,
               interval=0.05, what=f"{n} event=expire lines")
    return wait_greeting(port or d.port, "220 ", timeout=timeout)


def status(d, ip):
    return d.ctl_json("status", ip)


def wait_state(d, ip, state, timeout=20):
    return wait_until(lambda: (lambda s: s if s["state"] == state else None)(status(d, ip)),
                      timeout=timeout, interval=0.2, what=f"status {ip} state {state}")


# -- times -------------------------------------------------------------------
def ts(s):
    """Parses an RFC 3339 UTC time ending in Z; asserts the form."""
    assert isinstance(s, str) and RFC3339_Z.match(s), f"not RFC 3339 UTC with Z: {s!r}"
    base, _, frac = s[:-1].partition(".")
    t = _dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    if frac:
        t += _dt.timedelta(microseconds=int((frac + "000000")[:6]))
    return t


def seconds_between(a, b):
    return (ts(b) - ts(a)).total_seconds()


def now_utc():
    return _dt.datetime.now(_dt.timezone.utc)


def check_block_shape(b):
    """Asserts a BLOCK object has exactly the SPEC §5 fields with the right types."""
    assert isinstance(b, dict), b
    # every named field of SPEC §5; an extra field (e.g. a record id) is an
    # additive extension a JSON consumer ignores, so it is tolerated here
    assert BLOCK_KEYS <= set(b), f"BLOCK lacks {BLOCK_KEYS - set(b)}: {b}"
    ipaddress.ip_network(b["address"], strict=True)
    assert "/" in b["address"], b
    assert b["state"] in ("blocked", "permanent", "lifted", "expired"), b
    assert b["reason"] in ("auth_failures", "unauth_attempts", "conn_rate", "manual"), b
    ts(b["started_at"])
    for k in ("expires_at", "lifted_at", "first_event_at", "last_event_at"):
        if b[k] is not None:
            ts(b[k])
    for k in ("lifted_by", "lift_reason"):
        assert b[k] is None or isinstance(b[k], str), (k, b)
    assert isinstance(b["events"], int) and not isinstance(b["events"], bool), b
    assert b["node"] is None or isinstance(b["node"], str), b
    if b["state"] == "permanent":
        assert b["expires_at"] is None, b
    if b["state"] in ("blocked",):
        assert b["expires_at"] is not None, b
    if b["state"] in ("blocked", "permanent"):
        assert b["lifted_at"] is None, b


def check_status_shape(s):
    assert isinstance(s, dict), s
    assert set(s) == STATUS_KEYS, f"status keys differ: extra {set(s) - STATUS_KEYS}, missing {STATUS_KEYS - set(s)}"
    assert s["state"] in ("clear", "blocked", "permanent"), s
    assert isinstance(s["counters"], dict) and set(s["counters"]) == COUNTER_KEYS, s
    for k, v in s["counters"].items():
        assert isinstance(v, int) and not isinstance(v, bool) and v >= 0, (k, s)
    assert isinstance(s["offenses"], int) and not isinstance(s["offenses"], bool), s
    ipaddress.ip_network(s["prefix"], strict=True)
    # the address asked about: an address, or the CIDR prefix when one was given
    if "/" in s["address"]:
        ipaddress.ip_network(s["address"], strict=True)
    else:
        ipaddress.ip_address(s["address"])
    for k in ("block", "last_block"):
        if s[k] is not None:
            check_block_shape(s[k])
    if s["state"] == "clear":
        assert s["block"] is None, s
    else:
        assert s["block"] is not None, s
        assert s["block"]["state"] == ("permanent" if s["state"] == "permanent" else "blocked"), s


# -- PROXY protocol headers -------------------------------------------------------
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(src, dst=None, sport=40000, dport=587):
    fam = "TCP6" if ":" in src else "TCP4"
    if dst is None:
        dst = "2001:db8:ffff::25" if fam == "TCP6" else "192.0.2.25"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2(src, dst=None, sport=40000, dport=587, tlvs=b"", command=0x1):
    """A PROXY v2 header (command 1 = PROXY, 0 = LOCAL)."""
    ver_cmd = 0x20 | command
    if command == 0:
        return V2_SIG + bytes([ver_cmd, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    s = ipaddress.ip_address(src)
    if s.version == 4:
        d = ipaddress.ip_address(dst or "192.0.2.25")
        body = s.packed + d.packed + struct.pack("!HH", sport, dport)
        fam = 0x11
    else:
        d = ipaddress.ip_address(dst or "2001:db8:ffff::25")
        body = s.packed + d.packed + struct.pack("!HH", sport, dport)
        fam = 0x21
    body += tlvs
    return V2_SIG + bytes([ver_cmd, fam]) + struct.pack("!H", len(body)) + body


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False
