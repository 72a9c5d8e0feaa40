"""The Lua scripts of the Redis stores: each one atomic, each on a single key.

Times cross the wire as integer microseconds in decimal strings (well inside the 2**53 that
Lua's doubles hold exactly), and every number a script writes back is formatted with
``%.17g``, so nothing is rounded to Lua's default 14 significant digits.

A breaker is one hash, ``<namespace>:breaker:<name>``, with the fields:

- ``s``: ``closed`` (or absent), ``open``, or ``half-open`` (only when forced);
- ``f``: consecutive failures counted while closed;
- ``o``: when it last opened, in microseconds of the breakers' clocks;
- ``t`` / ``u``: the half-open trial's lease: its holder's token, and until when it holds
  (microseconds). A lease past ``u`` is free again: its holder is presumed dead.

A rate limiter's key holds its GCRA "theoretical arrival time" in microseconds of Redis's
own clock (``TIME``), with a ``PX`` expiry at the moment it stops mattering.
"""

from __future__ import annotations

from typing import Final

#: Take the half-open trial if it is free (the caller saw "open past its reset timeout").
#: ARGV: now, reset timeout, lease end (all microseconds), token.
#: Returns {"closed", failures} | {"open", opened_at} | {"busy"} | {"trial"}.
ADMIT_TRIAL: Final = """
local state, failures, opened, holder, held_until =
    unpack(redis.call('HMGET', KEYS[1], 's', 'f', 'o', 't', 'u'))
local now = tonumber(ARGV[1])
if not state or state == 'closed' then
    return {'closed', failures or '0'}
end
if state == 'open' and now < tonumber(opened) + tonumber(ARGV[2]) then
    return {'open', opened}
end
if holder and now < tonumber(held_until) then
    return {'busy'}
end
redis.call('HSET', KEYS[1], 't', ARGV[4], 'u', ARGV[3])
return {'trial'}
"""

#: A call failed. ARGV: now (microseconds), fail_max, the trial's token or "".
#: Returns nil (no change of state) or {from, to, failures}.
RECORD_FAILURE: Final = """
local state, failures, holder = unpack(redis.call('HMGET', KEYS[1], 's', 'f', 't'))
if ARGV[3] ~= '' then
    if holder ~= ARGV[3] then
        return nil
    end
    redis.call('HSET', KEYS[1], 's', 'open', 'o', ARGV[1])
    redis.call('HDEL', KEYS[1], 't', 'u')
    return {'half-open', 'open', failures or '0'}
end
if state and state ~= 'closed' then
    return nil
end
local count = redis.call('HINCRBY', KEYS[1], 'f', 1)
if count >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 's', 'open', 'o', ARGV[1])
    redis.call('HDEL', KEYS[1], 't', 'u')
    return {'closed', 'open', tostring(count)}
end
return nil
"""

#: A call succeeded. ARGV: the trial's token or "" (an ordinary call that saw failures).
#: Returns nil or {from, to, failures}.
RECORD_SUCCESS: Final = """
local state, failures, holder = unpack(redis.call('HMGET', KEYS[1], 's', 'f', 't'))
if ARGV[1] ~= '' then
    if holder ~= ARGV[1] then
        return nil
    end
    redis.call('HSET', KEYS[1], 's', 'closed', 'f', '0')
    redis.call('HDEL', KEYS[1], 't', 'u')
    return {'half-open', 'closed', failures or '0'}
end
if (not state or state == 'closed') and failures and failures ~= '0' then
    redis.call('HSET', KEYS[1], 'f', '0')
end
return nil
"""

#: A call ended without a verdict: free the trial if *token* holds it. ARGV: token.
RELEASE_TRIAL: Final = """
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then
    redis.call('HDEL', KEYS[1], 't', 'u')
end
return nil
"""

#: An operator set the state. ARGV: state, now (microseconds).
#: Returns nil (already in that state) or {from, to, failures}.
FORCE: Final = """
local state, failures, holder = unpack(redis.call('HMGET', KEYS[1], 's', 'f', 't'))
state = state or 'closed'
local previous = state
if state == 'open' and holder then
    previous = 'half-open'
end
redis.call('HDEL', KEYS[1], 't', 'u')
redis.call('HSET', KEYS[1], 's', ARGV[1])
if ARGV[1] == 'open' then
    redis.call('HSET', KEYS[1], 'o', ARGV[2])
else
    redis.call('HSET', KEYS[1], 'f', '0')
end
if previous == ARGV[1] then
    return nil
end
return {previous, ARGV[1], failures or '0'}
"""

#: Give a cache load lease back, if *token* still holds it. ARGV: token.
RELEASE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

#: GCRA on Redis's clock. ARGV: interval, max_wait (microseconds), burst.
#: Returns {1, wait} (reserved; wait in microseconds) or {0, wait} (nothing reserved).
RESERVE: Final = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tolerance = (tonumber(ARGV[3]) - 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
    tat = now
end
local wait = tat - tolerance - now
if wait < 0 then
    wait = 0
end
if wait > max_wait then
    return {0, string.format('%.17g', wait)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.17g', next_tat),
           'PX', math.max(1, math.ceil((next_tat - now) / 1000)))
return {1, string.format('%.17g', wait)}
"""
