"""TLS hygiene (issue 11 item 6): the Mozilla "intermediate" suite set, with
only AEAD suites for TLS 1.2, on both the implicit-TLS and the STARTTLS
listener; a refused handshake ends with a TLS alert, not a bare close."""

import subprocess

from conftest import T

# The test certificate is ECDSA (P-256): these are the suites it could use.
CBC_SUITES = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
              "ECDHE-ECDSA-AES128-SHA256"]
AEAD_SUITES = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]


def s_client(port, *args, starttls=False):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
           "-servername", "localhost", *args]
    if starttls:
        cmd += ["-starttls", "smtp"]
    cp = subprocess.run(cmd, input=b"QUIT\r\n", capture_output=True, timeout=30 * T)
    return cp.returncode, (cp.stdout + cp.stderr).decode("utf-8", "replace")


def negotiated(out):
    for line in out.splitlines():
        if line.strip().startswith("Cipher is "):
            return line.split("Cipher is ", 1)[1].strip()
        if "New, TLSv1.2, Cipher is" in line:
            return line.rsplit(" ", 1)[1]
    return None


def test_cbc_suites_refused(daemon):
    for starttls, port in ((False, daemon.tls_port), (True, daemon.port)):
        for suite in CBC_SUITES:
            rc, out = s_client(port, "-cipher", suite, starttls=starttls)
            assert rc != 0, f"{suite} accepted (starttls={starttls}):\n{out}"
            assert negotiated(out) in (None, "(NONE)"), out


def test_aead_suites_served(daemon):
    for starttls, port in ((False, daemon.tls_port), (True, daemon.port)):
        for suite in AEAD_SUITES:
            rc, out = s_client(port, "-cipher", suite, starttls=starttls)
            assert negotiated(out) == suite, f"{suite} (starttls={starttls}):\n{out}"
    # TLS 1.3 stays on (its suites are all AEAD)
    cp = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.tls_port}",
                         "-tls1_3"], input=b"QUIT\r\n", capture_output=True, timeout=30 * T)
    assert b"TLSv1.3" in cp.stdout, cp.stdout.decode("utf-8", "replace")


def test_refused_handshake_ends_with_an_alert(daemon):
    """A client offering only CBC suites is told so with a handshake_failure
    alert (before issue 11: a bare close, "unexpected eof")."""
    for starttls, port in ((False, daemon.tls_port), (True, daemon.port)):
        rc, out = s_client(port, "-cipher", CBC_SUITES[0], starttls=starttls)
        assert rc != 0, out
        assert "alert handshake failure" in out, f"no TLS alert (starttls={starttls}):\n{out}"
        assert "unexpected eof" not in out, out
