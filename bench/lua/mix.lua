-- Soak: a round-robin of cheap requests that cross most of the request path (routing, both error
-- envelopes, token checks, the user cache): /me and /info with a Bearer token, /me with a forged
-- token (401), a login with a malformed body (400, no hashing) and /healthz.
-- args: access-token
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "common"

local requests = {}
local i = 0

function init(args)
  local token = args[1]
  local bearer = { ["Authorization"] = "Bearer " .. token }
  local forged = { ["Authorization"] = "Bearer " .. token:sub(1, -4) .. "AAA" }
  requests = {
    wrk.format("GET", "/api/v1/auth/me", bearer),
    wrk.format("GET", "/app/auth/info", bearer),
    wrk.format("GET", "/api/v1/auth/me", forged),
    wrk.format("POST", "/app/auth/login", { ["Content-Type"] = "application/json" }, '{"loginID": '),
    wrk.format("GET", "/healthz"),
  }
  i = (tid or 1) - 1
end

function request()
  i = i % #requests + 1
  return requests[i]
end
