"""The Lua scripts of the Redis stores: each one atomic, each on a single key.

Times cross the wire as integer microseconds in decimal strings (well inside the 2**53 that
Lua's doubles hold exactly), and every number a script writes back is formatted with
``%.17g``, so nothing is rounded to Lua's default 14 significant digits.

A breaker is one string, ``<namespace>:breaker:<name>``, absent while it is closed and
has never counted a failure (so the happy path reads a missing key), else five fields
joined by ``|``:

- the state: ``closed``, ``open``, or ``half-open`` (from the first trial on, or forced);
- the consecutive failures counted while closed;
- when it last opened, in microseconds of the breakers' clocks (empty: never);
- the half-open trial's lease: its holder's token (empty: none), and until when it holds,
  in microseconds. A lease past its end is free again: its holder is presumed dead.

A rate limiter's key holds its GCRA "theoretical arrival time" in microseconds of Redis's
own clock (``TIME``), with a ``PX`` expiry at the moment it stops mattering.
"""

from __future__ import annotations

from typing import Final

#: Read and write a breaker's string (prepended to each breaker script).
_BREAKER = """
local function load()
    local raw = redis.call('GET', KEYS[1])
    if not raw then
        return 'closed', 0, '', '', ''
    end
    local state, failures, opened, holder, held_until =
        string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
    return state, tonumber(failures), opened, holder, held_until
end
local function save(state, failures, opened, holder, held_until)
    redis.call('SET', KEYS[1],
               table.concat({state, tostring(failures), opened, holder, held_until}, '|'))
end
"""

#: Take the half-open trial if it is free (the caller saw "open past its reset timeout").
#: The breaker is half-open from then on, until a trial's verdict or an operator moves it.
#: ARGV: now, reset timeout, lease end (all microseconds), token.
#: Returns {"closed", failures} | {"open", opened_at} | {"busy"}
#: | {"trial", previous state, failures}.
ADMIT_TRIAL: Final = (
    _BREAKER
    + """
local state, failures, opened, holder, held_until = load()
local now = tonumber(ARGV[1])
if state == 'closed' then
    return {'closed', tostring(failures)}
end
if state == 'open' and now < tonumber(opened) + tonumber(ARGV[2]) then
    return {'open', opened}
end
if holder ~= '' and now < tonumber(held_until) then
    return {'busy'}
end
save('half-open', failures, opened, ARGV[4], ARGV[3])
return {'trial', state, tostring(failures)}
"""
)

#: A call failed. ARGV: now (microseconds), fail_max, the trial's token or "".
#: Returns nil (no change of state) or {from, to, failures}.
RECORD_FAILURE: Final = (
    _BREAKER
    + """
local state, failures, opened, holder, held_until = load()
if ARGV[3] ~= '' then
    if holder ~= ARGV[3] then
        return nil
    end
    save('open', failures, ARGV[1], '', '')
    return {'half-open', 'open', tostring(failures)}
end
if state ~= 'closed' then
    return nil
end
failures = failures + 1
if failures >= tonumber(ARGV[2]) then
    save('open', failures, ARGV[1], '', '')
    return {'closed', 'open', tostring(failures)}
end
save(state, failures, opened, holder, held_until)
return nil
"""
)

#: A call succeeded. ARGV: the trial's token or "" (an ordinary call that saw failures).
#: Returns nil or {from, to, failures}.
RECORD_SUCCESS: Final = (
    _BREAKER
    + """
local state, failures, opened, holder, held_until = load()
if ARGV[1] ~= '' then
    if holder ~= ARGV[1] then
        return nil
    end
    save('closed', 0, opened, '', '')
    return {'half-open', 'closed', tostring(failures)}
end
if state == 'closed' and failures ~= 0 then
    save(state, 0, opened, holder, held_until)
end
return nil
"""
)

#: A call ended without a verdict: free the trial if *token* holds it. ARGV: token.
RELEASE_TRIAL: Final = (
    _BREAKER
    + """
local state, failures, opened, holder, held_until = load()
if holder ~= '' and holder == ARGV[1] then
    save(state, failures, opened, '', '')
end
return nil
"""
)

#: An operator set the state. ARGV: state, now (microseconds).
#: Returns nil (already in that state) or {from, to, failures}.
FORCE: Final = (
    _BREAKER
    + """
local state, failures, opened, holder, held_until = load()
local previous = state
if state == 'open' and holder ~= '' then
    previous = 'half-open'
end
if ARGV[1] == 'open' then
    save('open', failures, ARGV[2], '', '')
else
    save(ARGV[1], 0, opened, '', '')
end
if previous == ARGV[1] then
    return nil
end
return {previous, ARGV[1], tostring(failures)}
"""
)

#: Take a cache load lease, unless a value is stored already. KEYS: value, lease.
#: ARGV: token, milliseconds. Returns 1 (taken) or 0 (held by another, or not needed).
TAKE_LEASE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
return 0
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
