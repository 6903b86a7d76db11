-- FLOOR, W3, W7 reads: one static GET, optionally with a Bearer token.
-- args: path [access-token]
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "common"

function init(args)
  wrk.method = "GET"
  wrk.path = args[1]
  if args[2] and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
end
