-- wrk script for bench/run: POST one JSON body, read from a file, on every request, and
-- print a one-line JSON summary at the end (the line starts with "BENCH ").
--
--   wrk -t2 -c32 -d5s -s bench/lua/post.lua http://127.0.0.1:PORT/ -- BODY_FILE
--
-- The request is built once (no `request` function), so wrk sends it without calling Lua:
-- the load generator stays as cheap as it can be.
--
-- With BENCH_PACE_MS=n (n > 0) in the environment each connection waits n ms after an answer
-- before its next request: a paced load below saturation. wrk's latency figures leave the
-- pause out.

-- The shared pace (BENCH_PACE_MS), from the folder this script is in.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "pace.lua")

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

-- The shared `done` (the summary line), from the folder this script is in.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "summary.lua")
