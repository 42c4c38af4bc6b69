-- The pace both wrk scripts share: with BENCH_PACE_MS set, each connection waits that long
-- after an answer before its next request (a paced load below saturation).
--
-- wrk decides whether to call delay() when it loads the script, before init(), so the pace
-- comes from the environment rather than from the script's arguments.
local pace = tonumber(os.getenv("BENCH_PACE_MS") or "0")
if pace > 0 then
  function delay()
    return pace
  end
end
