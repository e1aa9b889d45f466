-- wrk script used by bench/run.py: POST a JSON body and print a machine-readable summary.
-- BENCH_BODY is the body; BENCH_HEADERS holds extra headers as "Name: value" lines.
-- BENCH_EXPECT, when set, is text every 2xx body must end with (streams: "[DONE]" or "message_stop"): it must be
-- in the body's last BENCH_EXPECT_TAIL bytes (its last event); bodies without it are counted as incomplete. Only
-- then is a response() callback defined, since it makes wrk hand every body to Lua.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end

local expect = os.getenv("BENCH_EXPECT") or ""
local tail = tonumber(os.getenv("BENCH_EXPECT_TAIL") or "") or 256
if expect ~= "" then
  incomplete = 0
  response = function(status, headers, body)
    if status >= 200 and status < 300 and not body:find(expect, math.max(1, #body - tail + 1), true) then
      incomplete = incomplete + 1
    end
  end
end

done = function(summary, latency, requests)
  local incomplete_total = 0
  for _, thread in ipairs(threads) do
    incomplete_total = incomplete_total + (thread:get("incomplete") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d non2xx=%d incomplete=%d connect=%d read=%d write=%d timeout=%d " ..
    "p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, incomplete_total, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
