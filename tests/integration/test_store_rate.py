"""The cluster's rate counters are the rate counter of src/base/rate.c in
Lua: the LUA_RATE text of src/store/redis_lua.c, as the daemon sends it, runs the
shared vector tests/vectors/rate.txt in a real redis-server (the C side runs
it in tests/unit/test_rate.c)."""
import codecs
import re
from pathlib import Path

from clusterutil import redis  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]

# Replays the steps (op, now, window) on one counter with the functions of
# LUA_RATE and returns each estimate, as rate_add / rate_estimate would.
HARNESS = """
local out = {}
local s, c, p = nil, 0, 0
for i = 1, #ARGV, 3 do
  local op = ARGV[i]; local now = tonumber(ARGV[i + 1]); local win = tonumber(ARGV[i + 2])
  if op == 'new' then
    s, c, p = nil, 0, 0
  else
    if op == 'add' then s, c, p = rate_roll(s, c, p, now, win); c = c + 1 end
    out[#out + 1] = rate_est(s, c, p, now, win)
  end
end
return out
"""


def lua_rate():
    """The C string literals between the LUA_RATE markers, decoded."""
    src = (ROOT / "src" / "store" / "redis_lua.c").read_text()
    block = re.search(r"/\* BEGIN LUA_RATE \*/(.*?)/\* END LUA_RATE \*/", src, re.S).group(1)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', block)
    assert parts, "no Lua found between the LUA_RATE markers"
    return "".join(codecs.decode(p, "unicode_escape") for p in parts)


def vector():
    steps = []
    for line in (ROOT / "tests" / "vectors" / "rate.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        op, now, win, want = line.split()
        steps.append((op, now, win, int(want)))
    return steps


def test_lua_rate_counter_runs_the_shared_vector(redis):  # noqa: F811
    steps = vector()
    args = [x for op, now, win, _ in steps for x in (op, now, win)]
    out = redis.cli("EVAL", lua_rate() + HARNESS, "0", *args)
    got = [int(v) for v in out.splitlines()]
    want = [w for op, _, _, w in steps if op != "new"]
    assert len(want) >= 20
    assert got == want, list(zip([s for s in steps if s[0] != "new"], got))
