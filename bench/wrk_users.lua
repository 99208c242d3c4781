-- wrk script: each request asks for the top-10 of a random known user (seeded), from the
-- model named after `--` (none: the server's default, validation's pick).
--   wrk -t2 -c16 -d10s --latency -s bench/wrk_users.lua http://127.0.0.1:8766 -- 943 ease
local users, query = 943, ""

init = function(args)
  users = tonumber(args[1] or "943")
  if args[2] and args[2] ~= "" then query = "?model=" .. args[2] end
  math.randomseed(42)
end

request = function()
  return wrk.format("GET", "/api/users/" .. math.random(1, users) .. "/recommendations" .. query)
end
