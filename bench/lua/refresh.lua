-- W6: POST /api/v1/auth/refresh, each wrk thread refreshing its own session.
-- args: path token [token ...]
-- The benchmark runs one connection per wrk thread (one thread per connection) and thread k
-- takes the k-th token: a client refreshes its own session, one request at a time, so no
-- request waits on another's lock of the session's row. (wrk's Lua does not say which connection
-- asks, so one thread per connection is how a connection keeps its own token.)
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "common"

local request_text

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local k = ((tid or 1) - 1) % (#args - 1) + 2
  request_text = wrk.format("POST", args[1], headers, string.format('{"refreshToken":"%s"}', args[k]))
end

function request()
  return request_text
end
