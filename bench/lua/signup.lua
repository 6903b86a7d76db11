-- W1: POST /api/auth/v1/signup with a new email and username on every request.
-- args: path run-id password
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "common"

local headers = { ["Content-Type"] = "application/json" }
local path, run, password
local n = 0

function init(args)
  path, run, password = args[1], args[2], args[3]
end

function request()
  n = n + 1
  local name = string.format("s%s%d_%d", run, tid or 1, n)
  local body = string.format(
    '{"email":"%s@bench.example.com","name":"Bench User","username":"%s","password":"%s","dont-login":false}',
    name, name, password)
  return wrk.format("POST", path, headers, body)
end
