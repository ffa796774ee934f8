-- wrk script of bench/api.py: the call-history requests of one org, cycled.
--
-- BENCH_API_PATHS names a file with one request path per line (first pages with filters,
-- and later pages through next_cursor, collected beforehand); BENCH_API_KEY is the org's API
-- key. Each thread starts at a different line so the threads do not ask the same page at the
-- same moment. done() prints one line that bench/api.py parses:
--   wrk requests=<n> duration_s=<s> rps=<r> p50_ms=<x> p95_ms=<y> p99_ms=<z> max_ms=<m>
--       non2xx=<n> connect_errors=<n> read_errors=<n> write_errors=<n> timeouts=<n>

local paths = {}
for line in io.lines(os.getenv("BENCH_API_PATHS")) do
  if #line > 0 then paths[#paths + 1] = line end
end
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY"),
  ["Accept"] = "application/json",
}
local next_index = 1
local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  next_index = (offset * 7) % #paths + 1
end

function request()
  local path = paths[next_index]
  next_index = next_index % #paths + 1
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "wrk requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
    "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end
