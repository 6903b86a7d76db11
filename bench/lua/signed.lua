-- W5: GET /api/customers/check-username/{u} with every header of seed 000. Signatures cannot be
-- made in wrk's Lua (no HMAC): bench/signing.py writes one pre-signed request per line
-- (path, x-username, x-app-payload, x-app-signature; tab-separated), each with its own nonce.
-- Thread k of n takes lines k, k+n, k+2n...; running past the end counts each request as "replayed" (a replayed
-- nonce, which the server must refuse).
-- args: file access-token csrf-token threads
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
require "common"

local requests = {}
local i = 0
local wrapped = false

function init(args)
  local file, token, csrf, nthreads = args[1], args[2], args[3], tonumber(args[4])
  local me = (tid or 1) - 1
  local line_no = 0
  for line in io.lines(file) do
    if line_no % nthreads == me then
      local path, user, payload, signature = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
      requests[#requests + 1] = wrk.format("GET", path, {
        ["Authorization"] = "Bearer " .. token,
        ["x-csrf-token"] = csrf,
        ["x-username"] = user,
        ["Content-Type"] = "application/json",
        ["locale"] = "en",
        ["x-app-version"] = "1.0.0",
        ["x-platform"] = "web",
        ["x-app-payload"] = payload,
        ["x-app-signature"] = signature,
      })
    end
    line_no = line_no + 1
  end
end

function request()
  i = i + 1
  if i > #requests then
    i = 1
    wrapped = true
  end
  if wrapped then
    count("replayed")
  end
  return requests[i]
end
