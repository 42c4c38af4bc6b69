-- wrk script for tests/fleet/run: POST the original demo's example row, one connection per
-- thread's share, paced, and count what the fleet test judges: answers that are not 200 and
-- requests that got no answer at all (socket errors), and which model versions answered.
--
--   wrk -t2 -c16 -d600s --timeout 10s -s load.lua URL -- NAME [close]
--
-- With `close` every request carries `Connection: close` (a new connection per request).
-- Each connection waits FLEET_PACE_MS (default 10) after an answer: a steady load that leaves
-- the two shared cores to the rollout. Stopped with SIGINT, wrk calls done(), which prints
--   LOAD name=NAME requests=N non200=N socket_errors=N versions=v1:N,v2:N

local pace = tonumber(os.getenv("FLEET_PACE_MS") or "10")
function delay()
  return pace
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

name = nil
function init(args)
  name = args[1]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[2] == "close" then
    wrk.headers["Connection"] = "close"
  end
  wrk.body = '{"data": [[0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]]}'
end

non200 = 0
versions = {}
function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
  local v = headers["x-model-version"] or headers["X-Model-Version"] or "none"
  versions[v] = (versions[v] or 0) + 1
end

function done(summary, latency, requests)
  local bad, seen = 0, {}
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non200")
    for v, n in pairs(thread:get("versions")) do
      seen[v] = (seen[v] or 0) + n
    end
  end
  local list = {}
  for v, n in pairs(seen) do
    table.insert(list, v .. ":" .. n)
  end
  table.sort(list)
  local e = summary.errors
  io.write(string.format("LOAD name=%s requests=%d non200=%d socket_errors=%d versions=%s p99_ms=%.1f\n",
    threads[1]:get("name"), summary.requests, bad,
    e.connect + e.read + e.write + e.timeout, table.concat(list, ","),
    latency:percentile(99) / 1000))
end
