-- wrk script for tests/vm/e2e.sh: POSTs the original demo's example row and, when wrk stops
-- (SIGINT), prints one line with what a client saw:
--
--   LOAD requests=<answers> non200=<answers that were not 200> connect=<n> read=<n>
--        write=<n> timeout=<n> max_ms=<slowest answer> p99_ms=<99th percentile>
--        codes=<status>x<count>,... (the non-200 answers by status, "-" if none)
--
-- connect/read/write/timeout are wrk's socket errors: a request that got no answer at all
-- (refused, closed before the answer, or not answered within --timeout). A failed request
-- is either a non-200 answer or one of those.
--
--   wrk -t2 -c16 -d600s --timeout 10s -s load.lua http://127.0.0.1:8080/
--   wrk -t2 -c8 -d600s --timeout 10s -H 'Connection: close' -s load.lua http://127.0.0.1:8080/

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"data": [[0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]]}'
  non200 = 0
  codes = {}
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local bad, count = 0, {}
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non200")
    for code, n in pairs(thread:get("codes")) do
      count[code] = (count[code] or 0) + n
    end
  end
  local by = {}
  for code, n in pairs(count) do
    table.insert(by, code .. "x" .. n)
  end
  table.sort(by)
  local e = summary.errors
  io.write(string.format(
    "LOAD requests=%d non200=%d connect=%d read=%d write=%d timeout=%d max_ms=%.0f p99_ms=%.1f codes=%s\n",
    summary.requests, bad, e.connect, e.read, e.write, e.timeout,
    latency.max / 1000, latency:percentile(99) / 1000,
    #by > 0 and table.concat(by, ",") or "-"))
end
