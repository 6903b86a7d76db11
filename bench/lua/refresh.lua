-- W6: POST /api/v1/auth/refresh cycling through the given refresh tokens.
-- args: path token [token ...]
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "common"

local requests = {}
local i = 0

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for k = 2, #args do
    requests[#requests + 1] = wrk.format("POST", args[1], headers,
      string.format('{"refreshToken":"%s"}', args[k]))
  end
  i = (tid or 1) - 1
end

function request()
  i = i % #requests + 1
  return requests[i]
end
