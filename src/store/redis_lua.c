/* redis_lua: the Lua scripts of the Redis store (redis.c). Every change is
 * one script, so a record, its indexes and its announcement never
 * disagree. */
#include "store/redis_priv.h"

/* KEYS: block, active, bytime, byprefix:PREFIX; ARGV: id, started, state,
 * channel, then field/value pairs. */
const char lua_put[] =
    "redis.call('HSET', KEYS[1], unpack(ARGV, 5))\n"
    "if ARGV[3] == 'blocked' or ARGV[3] == 'permanent' then redis.call('SADD', KEYS[2], ARGV[1])\n"
    "else redis.call('SREM', KEYS[2], ARGV[1]) end\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[4], 'B ' .. ARGV[1])\n"
    "return 1\n";

/* Write-back after an outage: only what Redis has no record of at all. */
const char lua_writeback[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 5))\n"
    "if ARGV[3] == 'blocked' or ARGV[3] == 'permanent' then redis.call('SADD', KEYS[2], ARGV[1]) end\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[4], 'B ' .. ARGV[1])\n"
    "return 1\n";

/* The blocks on any of the prefixes ARGV[3..] (an address and every prefix
 * covering it), newest first, at most ARGV[2] (0: all). */
const char lua_history_of[] =
    "local ids = {}\n"
    "for i = 3, #ARGV do\n"
    "  local z = redis.call('ZREVRANGE', ARGV[1] .. 'byprefix:' .. ARGV[i], 0, -1, 'WITHSCORES')\n"
    "  for j = 1, #z, 2 do ids[#ids + 1] = {z[j], tonumber(z[j + 1])} end\n"
    "end\n"
    "table.sort(ids, function(a, b) return a[2] > b[2] end)\n"
    "local out = {}\n"
    "local lim = tonumber(ARGV[2])\n"
    "for _, v in ipairs(ids) do\n"
    "  if lim > 0 and #out >= lim then break end\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. v[1])\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* The two-period rate counter of base/rate.c, the same arithmetic in Lua
 * for the cluster's counters: a counter is s (start of the current period,
 * ms; nil: never used), c (events in it) and p (in the previous one).
 * tests/integration/test_store_rate.py runs tests/vectors/rate.txt through
 * this very text, as tests/unit/test_rate.c runs it through rate.c. */
/* BEGIN LUA_RATE */
#define LUA_RATE \
    "local function rate_roll(s, c, p, now, win)\n" \
    "  if s == nil or now - s >= 2 * win then return now, 0, 0 end\n" \
    "  if now - s >= win then return s + win, 0, c end\n" \
    "  return s, c, p\n" \
    "end\n" \
    "local function rate_est(s, c, p, now, win)\n" \
    "  if s == nil or now - s >= 2 * win then return 0 end\n" \
    "  if now - s >= win then p = c; c = 0; s = s + win end\n" \
    "  return c + math.floor(p * (win - (now - s)) / win)\n" \
    "end\n"
/* END LUA_RATE */

/* The cluster's estimates of three counters. KEYS: the counters; ARGV:
 * their windows. */
const char lua_counters[] =
    LUA_RATE
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  local h = redis.call('HMGET', KEYS[i], 's', 'c', 'p')\n"
    "  out[i] = rate_est(tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0, now,\n"
    "                    tonumber(ARGV[i]))\n"
    "end\n"
    "return out\n";

/* KEYS: block, active; ARGV: id, new state, at, by, why, channel, letter. */
const char lua_lift[] =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st ~= 'blocked' and st ~= 'permanent' then return 0 end\n"
    "if ARGV[2] == 'expired' and st ~= 'blocked' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[2])\n"
    "if ARGV[2] == 'lifted' then\n"
    "  redis.call('HSET', KEYS[1], 'lifted_at', ARGV[3], 'lifted_by', ARGV[4], 'lift_reason', ARGV[5])\n"
    "end\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. ARGV[1])\n"
    "return 1\n";

/* rate_add of base/rate.c, summed over every node. The call that reaches
 * the limit resets the counter and alone gets 1, so one node imposes the
 * block. KEYS: counter; ARGV: window ms, limit. */
const char lua_count[] =
    LUA_RATE
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local win = tonumber(ARGV[1]); local limit = tonumber(ARGV[2])\n"
    "local h = redis.call('HMGET', KEYS[1], 's', 'c', 'p', 'f')\n"
    "local s = tonumber(h[1]); local c = tonumber(h[2]) or 0; local p = tonumber(h[3]) or 0\n"
    "local f = tonumber(h[4]) or now\n"
    "if rate_est(s, c, p, now, win) == 0 then f = now end\n"
    "s, c, p = rate_roll(s, c, p, now, win)\n"
    "c = c + 1\n"
    "local e = rate_est(s, c, p, now, win)\n"
    "if e >= limit then redis.call('DEL', KEYS[1]); return {1, e, f} end\n"
    "redis.call('HSET', KEYS[1], 's', s, 'c', c, 'p', p, 'f', f)\n"
    "redis.call('PEXPIRE', KEYS[1], 2 * win)\n"
    "return {0, e, f}\n";

/* Records by id list; KEYS: none; ARGV: prefix, ids... */
const char lua_fetch[] =
    "local out = {}\n"
    "for i = 2, #ARGV do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. ARGV[i])\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* Every block in force or started since ARGV[2]. KEYS: active, bytime. */
const char lua_load[] =
    "local ids = redis.call('SMEMBERS', KEYS[1])\n"
    "local seen = {}\n"
    "for _, id in ipairs(ids) do seen[id] = true end\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '+inf')) do\n"
    "  if not seen[id] then ids[#ids + 1] = id; seen[id] = true end\n"
    "end\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. id)\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* The blocks in force. KEYS: active. */
const char lua_active[] =
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. id)\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* History, newest first: every record (filtered by prefix in C). KEYS: bytime. */
const char lua_history[] =
    "local out = {}\n"
    "for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. id)\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* Prune: ended records older than ARGV[2]. KEYS: bytime, active. */
const char lua_prune[] =
    "local n = 0\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 1000)) do\n"
    "  local k = ARGV[1] .. 'block:' .. id\n"
    "  local st = redis.call('HGET', k, 'state')\n"
    "  if st ~= 'blocked' and st ~= 'permanent' then\n"
    "    local pf = redis.call('HGET', k, 'prefix')\n"
    "    if pf then redis.call('ZREM', ARGV[1] .. 'byprefix:' .. pf, id) end\n"
    "    redis.call('DEL', k); redis.call('ZREM', KEYS[1], id); n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";
