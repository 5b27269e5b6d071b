"""The store's cmocka suite (tests/unit/test_store.c) against both backends
through the one interface: SQLite always, and Redis here, on a redis-server
this test starts."""
import os
import re
import subprocess

from clusterutil import redis  # noqa: F401  (fixture)
from conftest import BUILD, T


def test_store_interface_on_both_backends(redis):  # noqa: F811
    exe = BUILD / "tests" / "unit" / "test_store"
    env = dict(os.environ, PORTCULLIS_TEST_REDIS=f"127.0.0.1:{redis.port}")
    r = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=120 * T)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # both groups ran, every test passed
    assert "store_redis: skipped" not in out, out
    passed = re.findall(r"\[  PASSED  \] (\d+) test", out)
    assert len(passed) == 2 and passed[0] == passed[1] and int(passed[0]) > 0, out
    assert "[  FAILED  ]" not in out, out


def test_account_store_on_both_backends(redis):  # noqa: F811
    """tests/unit/test_accounts.c: locks, familiar sets, repeats and history
    through accounts.h, on SQLite and on this Redis."""
    exe = BUILD / "tests" / "unit" / "test_accounts"
    env = dict(os.environ, PORTCULLIS_TEST_REDIS=f"127.0.0.1:{redis.port}")
    r = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=120 * T)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "accounts_redis: skipped" not in out, out
    passed = re.findall(r"\[  PASSED  \] (\d+) test", out)
    assert len(passed) == 2 and passed[0] == passed[1] and int(passed[0]) > 0, out
    assert "[  FAILED  ]" not in out, out
