-- wrk script used by bench/run.py: POST a JSON body and print a machine-readable summary.
-- BENCH_BODY is the body; BENCH_HEADERS holds extra headers as "Name: value" lines.
-- BENCH_EXPECT, when set, is what every 2xx body's last event must hold: one string a line, each of them (a
-- Responses stream: "response.completed" and its usage's token counts); bodies without it are counted as
-- incomplete. With BENCH_EXPECT_IN=tail (streams: "[DONE]" or "message_stop") it must be in the body's last
-- BENCH_EXPECT_TAIL bytes; with BENCH_EXPECT_IN=last-event (Gemini: "finishReason", since a Gemini stream has no
-- closing event; Responses, whose closing event is longer than a tail) it must follow the body's last "data:",
-- which is looked for in the last BENCH_EXPECT_TAIL bytes first, then in the whole body. Only then is a
-- response() callback defined, since it makes wrk hand every body to Lua. BENCH_EXPECT_SKIP, when set, is an event
-- passed over when it ends the body ("data: [DONE]" after a Responses stream's last event).

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

-- Where the last "data:" at or after `from` and before `limit` starts, or nil.
local function last_data(body, from, limit)
  local last, position = nil, from
  while true do
    local found = body:find("data:", position, true)
    if not found or found >= limit then
      return last
    end
    last, position = found, found + 5
  end
end

local expect = os.getenv("BENCH_EXPECT") or ""
local expected = {}
for marker in expect:gmatch("[^\n]+") do
  table.insert(expected, marker)
end
local tail = tonumber(os.getenv("BENCH_EXPECT_TAIL") or "") or 256
local in_last_event = os.getenv("BENCH_EXPECT_IN") == "last-event"
local skip = os.getenv("BENCH_EXPECT_SKIP") or ""
if expect ~= "" then
  incomplete = 0
  response = function(status, headers, body)
    if status < 200 or status >= 300 then
      return
    end
    local limit = #body + 1 -- where the body's events end: before a trailing `skip` event
    if skip ~= "" then
      limit = body:find(skip, math.max(1, #body - #skip - 7), true) or limit
    end
    local from = math.max(1, limit - tail)
    local start = from
    if in_last_event then
      start = last_data(body, from, limit) or (from > 1 and last_data(body, 1, limit))
    end
    local complete = start ~= nil and start ~= false
    for _, marker in ipairs(expected) do
      local found = complete and body:find(marker, start, true)
      complete = found ~= nil and found ~= false and found < limit
    end
    if not complete then
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
