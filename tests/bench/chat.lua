-- chat.lua — wrk script for `make bench`: POST /v1/chat with the bench
-- user's token (env TOKEN); counts 202s and other statuses per thread and
-- prints "accepted=N other=M" when done.
wrk.method = "POST"
wrk.body = '{"message":"hello from wrk"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) accepted = 0; other = 0 end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("wrk_counts accepted=%d other=%d\n", a, o))
end
