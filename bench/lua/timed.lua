-- wrk script for bench/run's flip test: logs every request with its wall-clock time, so that
-- failures and latency can be put on a timeline next to the deploys.
--
--   wrk -tN -cN -d600s -s bench/lua/timed.lua URL -- BODY_FILE OUT_DIR
--
-- Run it with one connection per thread (-t equal to -c). Then requests and answers on a
-- thread strictly alternate, so `request` can start a clock that `response` stops, and a
-- `request` that finds the previous one unanswered knows it failed on the socket (wrk
-- reconnects and asks again after a connect, read, write or timeout error; Lua never sees
-- those errors directly).
--
-- Each thread writes OUT_DIR/t<N>.log with one line per event:
--   <unix time> <latency µs> <status>   an answer
--   E <unix time>                       a request that got no answer
-- The summary line (starting with "BENCH ") is printed when wrk stops (SIGINT or -d).
--
-- With BENCH_PACE_MS=n in the environment each connection waits n ms after an answer before
-- its next request (a paced load below saturation) instead of asking again at once.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local CLOCK_REALTIME = 0
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(CLOCK_REALTIME, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- The shared pace (BENCH_PACE_MS), from the folder this script is in.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "pace.lua")

local count = 0
function setup(thread)
  count = count + 1
  thread:set("id", count)
end

local out, req, pending
local answered = false

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  out = assert(io.open(args[2] .. "/t" .. id .. ".log", "w"))
  out:setvbuf("full", 65536)
end

function request()
  local t = now()
  -- wrk also calls request() once while starting; only count after a first answer.
  if pending and answered then
    out:write(string.format("E %.6f\n", t))
  end
  pending = t
  if not req then req = wrk.format() end
  return req
end

function response(status, headers, body)
  local t = now()
  answered = true
  out:write(string.format("%.6f %d %d\n", t, (t - (pending or t)) * 1e6, status))
  pending = nil
end

-- The shared `done` (the summary line), from the folder this script is in.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "summary.lua")
