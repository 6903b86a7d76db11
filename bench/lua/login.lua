-- W2 (right password), W4 (wrong password), W7 flood: POST /app/auth/login as a random one of
-- `count` users named <prefix><7 digits>, 1-based.
-- args: path prefix count password
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "common"

local headers = { ["Content-Type"] = "application/json" }
local path, prefix, users, password

function init(args)
  path, prefix, users, password = args[1], args[2], tonumber(args[3]), args[4]
  math.randomseed(os.time() * 1000 + (tid or 1) * 7919)
end

function request()
  local body = string.format('{"loginID":"%s%07d","password":"%s","deviceToken":"bench-device"}',
    prefix, math.random(1, users), password)
  return wrk.format("POST", path, headers, body)
end
