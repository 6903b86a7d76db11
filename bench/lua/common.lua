-- Shared by every workload: counts responses by status in each thread and, when wrk is done,
-- prints one line `BENCH_JSON {...}` (throughput, latency percentiles in microseconds, socket
-- errors, statuses, counters) that bench/wrk.py parses. Workload scripts `require "common"`.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

statuses = {}
counters = {}

function count(name)
  counters[name] = (counters[name] or 0) + 1
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function merge(into, from)
  if type(from) ~= "table" then return end
  for k, v in pairs(from) do
    local key = tostring(k)
    into[key] = (into[key] or 0) + v
  end
end

local function object(tbl)
  local parts = {}
  for k, v in pairs(tbl) do
    parts[#parts + 1] = string.format('"%s":%d', k, math.floor(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local codes, extra = {}, {}
  for _, t in ipairs(threads) do
    merge(codes, t:get("statuses"))
    merge(extra, t:get("counters"))
  end
  local e = summary.errors
  local p = function(q) return math.floor(latency:percentile(q)) end
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"statuses":%s,"counters":%s}\n',
    math.floor(summary.duration), math.floor(summary.requests), math.floor(summary.bytes),
    e.connect, e.read, e.write, e.status, e.timeout,
    math.floor(latency.min), math.floor(latency.max), latency.mean, latency.stdev,
    p(50), p(90), p(99), p(99.9),
    object(codes), object(extra)))
end
