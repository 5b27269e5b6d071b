#!/usr/bin/python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (committed; a few KB
each). Re-run after editing: /usr/bin/python3 fuzz/mkcorpus.py"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.unlink(os.path.join(d, old))
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


put("smtp_command", {
    "ehlo": "EHLO client.example.org",
    "helo-literal": "HELO [192.0.2.1]",
    "helo-v6": "EHLO [IPv6:2001:db8::1]",
    "mail-params": "MAIL FROM:<alice@example.org> SIZE=12345 BODY=8BITMIME",
    "mail-null": "MAIL FROM:<>",
    "mail-space": "MAIL FROM: <bob@example.com> SMTPUTF8 AUTH=<>",
    "mail-route": "MAIL FROM:<@relay.example,@b.example:carol@example.net> BODY=7BIT",
    "mail-utf8": "mail from:<j\xfcrgen@exa\u0301mple.org> SMTPUTF8",
    "mail-bigsize": "MAIL FROM:<a@b> SIZE=99999999999999999999999",
    "mail-badparam": "MAIL FROM:<a@b> RET=HDRS ENVID=x",
    "rcpt": "RCPT TO:<dave@example.com>",
    "rcpt-param": "RCPT TO:<postmaster@example.com> NOTIFY=NEVER",
    "rcpt-postmaster": "rcpt to:<Postmaster>",
    "data": "DATA",
    "rset": "RSET",
    "noop": "NOOP anything at all",
    "quit": "QUIT",
    "vrfy": "VRFY user",
    "help": "HELP MAIL",
    "starttls": "STARTTLS",
    "auth-plain": "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
    "auth-login": "AUTH LOGIN",
    "nul": b"EHLO a\x00b",
    "control": b"MAIL FROM:<a\x01@b>",
})

data_seeds = {
    "simple": "Subject: hi\r\n\r\nbody\r\n.\r\n",
    "stuffed": "..leading dot\r\n.\r\n.x\r\n.\r\n",
    "empty": ".\r\n",
    "bare-lf": "a\nb\r\n.\r\n",
    "bare-cr": "a\rb\r\n.\r\n",
    "smuggle-lf": "a\r\n\n.\n\r\nnext\r\n.\r\n",
    "smuggle-cr": "a\r\n.\r\rMAIL FROM:<x@y>\r\n.\r\n",
    "after-end": "x\r\n.\r\nQUIT\r\n",
    "unterminated": "no end here\r\n.",
    "long-line": "L" * 998 + "\r\n" + "M" * 999 + "\r\n.\r\n",
}
# Byte 0 picks the chunking (low 5 bits: size-1, 0x20 random, 0x40 empty
# feeds), byte 1 the size limit (>= 128: (b-127)*16 octets).
modes = [b"\x00\x00", b"\x23\x00", b"\x61\x00", b"\x1f\x81", b"\x04\x90"]
put("smtp_data", {f"{name}-{i}": modes[i % len(modes)] + body.encode()
                  for i, (name, body) in enumerate(data_seeds.items())})

put("sasl", {
    "plain": "AGFsaWNlAHNlY3JldA==",            # \0alice\0secret
    "plain-authz": "YWxpY2UAYWxpY2UAc2VjcmV0",  # alice\0alice\0secret
    "plain-proxy": "Ym9iAGFsaWNlAHNlY3JldA==",  # bob\0alice\0secret
    "plain-nopass": "AGFsaWNlAA==",
    "login": "dXNlckBleGFtcGxlLm9yZw==",
    "pad1": "YWI=",
    "pad2": "YQ==",
    "cancel": "*",
    "bad-char": "YW!j",
    "bad-pad": "Y=Q=",
    "raw-plain": b"\x00user@example.org\x00p\xc3\xa4ss word",
})

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


v4 = bytes([203, 0, 113, 7, 192, 0, 2, 1]) + struct.pack(">HH", 56324, 587)
v6 = (bytes.fromhex("20010db8000000000000000000000001") +
      bytes.fromhex("20010db8000000000000000000000002") + struct.pack(">HH", 40000, 465))
mapped = (bytes.fromhex("00000000000000000000ffffcb007107") +
          bytes.fromhex("00000000000000000000ffffc0000201") + struct.pack(">HH", 1, 25))
put("proxy", {
    "v1-tcp4": "PROXY TCP4 203.0.113.7 192.0.2.1 56324 587\r\nEHLO x\r\n",
    "v1-tcp6": "PROXY TCP6 2001:db8::1 2001:db8::2 40000 465\r\n",
    "v1-mapped": "PROXY TCP6 ::ffff:203.0.113.7 ::ffff:192.0.2.1 1 25\r\n",
    "v1-unknown": "PROXY UNKNOWN\r\n",
    "v1-unknown-long": "PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n",
    "v1-partial": "PROXY TCP4 203.0.113.7 192.0",
    "v1-badport": "PROXY TCP4 1.2.3.4 5.6.7.8 0123 25\r\n",
    "v2-tcp4": v2(1, 0x11, v4) + b"EHLO x\r\n",
    "v2-tcp6-tlv": v2(1, 0x21, v6 + tlv(0x02, b"mail.example.org") + tlv(0x04, b"\x00" * 3) +
                      tlv(0x20, b"\x01\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3"))),
    "v2-mapped": v2(1, 0x21, mapped),
    "v2-local": v2(0, 0x00, b""),
    "v2-unspec": v2(1, 0x00, b"\x00" * 4),
    "v2-unix": v2(1, 0x31, b"\x00" * 216),
    "v2-udp": v2(1, 0x12, v4),
    "v2-short": v2(1, 0x11, v4[:6]),
    "v2-partial": v2(1, 0x11, v4)[:20],
})

put("addr", {
    "v4": "203.0.113.7",
    "v6": "2001:db8::1",
    "v4-prefix": "203.0.113.77/24",
    "v6-prefix": "2001:db8:abcd:12::/64",
    "bracket": "[::1]",
    "mapped": "::ffff:192.0.2.1",
    "mapped-prefix": "::ffff:0:0/104",
    "list": "127.0.0.0/8 ::1/128",
    "list-comma": "10.0.0.0/8, 192.168.0.0/16,fe80::/10\t0.0.0.0/0",
    "bad-len": "1.2.3.4/33",
    "compat": "::1.2.3.4/120",
})

put("config", {
    "valid.conf": """[server]
hostname = mail.example.test
listen = 127.0.0.1:2525/starttls [::1]:4650/plain
workers = 2
max_message_size = 25M
timeout_command = 5m
timeout_data = 600s
proxy_protocol = no
proxy_from = 127.0.0.1/32 ::1
[tls]
require_tls_for_auth = yes
plain_auth_from = 127.0.0.0/8 ::1/128
[auth]
users = users
mechanisms = PLAIN, LOGIN
failure_delay = 200ms
[guard]
auth_fail_limit = 5
auth_fail_window = 10m
ban_durations = 15m 1h 24h 30d
permanent_after = 4
ipv6_prefix = 64
allow = 192.0.2.0/24
reject_text = go away
[store]
backend = redis
redis = unix:/run/redis.sock
redis_db = 3
[delivery]
mode = maildir
maildir = ../var/mail
[control]
socket = /run/portcullis.sock
[log]
level = debug
format = json
""",
    "bad-key.conf": "[server]\nlisten = 127.0.0.1:25\nbogus = 1\n",
    "tls.conf": "[server]\nlisten = 0.0.0.0:465/tls\n[tls]\ncert = c.pem\nkey = k.pem\n"
                "[store]\nredis = 127.0.0.1:6379\n",
    "multiline.conf": "[guard]\nallow = 10.0.0.0/8\n  172.16.0.0/12 ; inline\n# c\n",
})

put("control", {
    "status": '{"cmd":"status","ip":"203.0.113.7"}',
    "status-v6": '{"cmd":"status","ip":"2001:db8::1"}\n',
    "history": '{"cmd":"history","ip":"203.0.113.0/24"}',
    "block": '{"cmd":"block","ip":"198.51.100.0/24","duration_ms":900000,"by":"ops","reason":"spam"}',
    "block-perm": '{"cmd":"block","ip":"2001:db8::/48","duration_ms":-1}',
    "unblock": '{"cmd":"unblock","ip":"203.0.113.7","by":"alice","reason":"customer called"}',
    "list": '{"cmd":"list","filter":"permanent"}',
    "stats": '{"cmd":"stats"}',
    "reload": '{"cmd":"reload"}',
    "dup": '{"cmd":"status","cmd":"stats"}',
    "bad-ip": '{"cmd":"status","ip":"203.0.113.999"}',
    "duration": '{"cmd":"block","ip":"192.0.2.1","duration":"15m","duration_ms":1.5}',
    "not-object": '["status"]',
    "unicode": '{"cmd":"status","ip":"\\u00e9\\ud83d\\ude00"}',
})
print("corpus written", file=sys.stderr)


put("relay_reply", {
    "greeting": "220 mx.example.test ESMTP Postfix\r\n",
    "ehlo": "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
            "250-STARTTLS\r\n250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
    "queued": "250 2.0.0 Ok: queued as 4Qx1ZK\r\n",
    "rcpt-refused": "550 5.1.1 <x@example.test>: Recipient address rejected\r\n",
    "tempfail": "451-4.3.0 Try\r\n451 4.3.0 again later\r\n",
    "data": "354 End data with <CR><LF>.<CR><LF>\r\n",
    "lmtp": "250 2.0.0 <a@b> Saved\r\n452 4.2.2 Mailbox full\r\n",
    "mixed": "250-a\r\n251 b\r\n",
})

put("dovecot", {
    "handshake": "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n"
                 "SPID\t1234\nCUID\t5\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n",
    "ok": "OK\t1\tuser=alice@example.test\n",
    "ok-nologin": "OK\t2\tuser=a\tnologin\tproxy\thost=10.0.0.1\n",
    "fail": "FAIL\t3\tuser=bob\n",
    "fail-temp": "FAIL\t4\ttemp\treason=Internal\001terror\n",
    "fail-code": "FAIL\t5\tcode=temp_fail\n",
    "cont": "CONT\t6\tVXNlcm5hbWU6\n",
})
