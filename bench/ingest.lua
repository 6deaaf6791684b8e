-- wrk script for bench/ingest.py: POST /api/event with varied bodies and user agents, counting answers.
--
-- Usage: wrk -t1 -c32 -d5s --latency -s bench/ingest.lua http://127.0.0.1:PORT -- requests.tsv
-- requests.tsv (written by bench/ingest.py): one request a line, "user agent<TAB>JSON body".
-- Every thread cycles through them in order, starting at a different line. At the end one line
-- is printed for ingest.py to read:
--   CG_RESULT accepted=N busy=N other=N duration_us=N p50_us=N p99_us=N
-- accepted: 2xx answers (acknowledged events); busy: 503 (queue full); other: any other status.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

-- Globals of each thread's Lua state: done() reads them with thread:get().
accepted = 0
busy = 0
other = 0

local requests = {}
local position = 0

function init(args)
   local path = args[1]
   if path == nil then
      error("pass the requests file after --")
   end
   for line in io.lines(path) do
      local agent, body = line:match("^([^\t]+)\t(.+)$")
      if agent then
         local headers = { ["Content-Type"] = "text/plain", ["User-Agent"] = agent }
         table.insert(requests, wrk.format("POST", "/api/event", headers, body))
      end
   end
   if #requests == 0 then
      error("no requests in " .. path)
   end
   position = (id * 97) % #requests
end

function request()
   position = position % #requests + 1
   return requests[position]
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      accepted = accepted + 1
   elseif status == 503 then
      busy = busy + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local total_accepted, total_busy, total_other = 0, 0, 0
   for _, thread in ipairs(threads) do
      total_accepted = total_accepted + thread:get("accepted")
      total_busy = total_busy + thread:get("busy")
      total_other = total_other + thread:get("other")
   end
   io.write(string.format(
      "CG_RESULT accepted=%d busy=%d other=%d duration_us=%d p50_us=%d p99_us=%d\n",
      total_accepted, total_busy, total_other, summary.duration,
      latency:percentile(50.0), latency:percentile(99.0)
   ))
end
