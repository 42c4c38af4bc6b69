-- wrk script for bench/run: POST one JSON body, read from a file, on every request, and
-- print a one-line JSON summary at the end (the line starts with "BENCH ").
--
--   wrk -t2 -c32 -d5s -s bench/lua/post.lua http://127.0.0.1:PORT/ -- BODY_FILE
--
-- The request is built once (no `request` function), so wrk sends it without calling Lua:
-- the load generator stays as cheap as it can be.

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
