-- wrk script of the peer benchmark: a new `?key=` on every request, and at the end
-- wrk's latency histogram (value in µs, count) written to $WRK_HISTOGRAM so that
-- peers.py can take out the synthetic samples wrk's coordinated-omission correction
-- added and report raw percentiles.
--
-- $WRK_CLOSE=1 adds `Connection: close` to every request.
-- $WRK_POST_EVERY=N makes every Nth request a POST with a 4 KiB body.

local counter = 0
local prefix = tostring(math.random(1, 1000000000))
local close = os.getenv("WRK_CLOSE") == "1"
local post_every = tonumber(os.getenv("WRK_POST_EVERY") or "0")
local body = string.rep("x", 4096)
local path = os.getenv("WRK_PATH") or "/"

request = function()
   counter = counter + 1
   local headers = {}
   if close then
      headers["Connection"] = "close"
   end
   local target = path .. "?key=" .. prefix .. "-" .. counter
   if post_every > 0 and counter % post_every == 0 then
      headers["Content-Type"] = "application/octet-stream"
      return wrk.format("POST", target, headers, body)
   end
   return wrk.format("GET", target, headers)
end

done = function(summary, latency, requests)
   local out = os.getenv("WRK_HISTOGRAM")
   if out == nil then
      return
   end
   local file = assert(io.open(out, "w"))
   file:write(string.format("duration_us %d\nrequests %d\n", summary.duration, summary.requests))
   -- latency(i) is the i-th distinct value and its count (wrk's __call); each call
   -- scans the histogram, so very wide histograms are cut at $WRK_HISTOGRAM_MAX values.
   local limit = tonumber(os.getenv("WRK_HISTOGRAM_MAX") or "20000")
   local distinct = #latency
   -- Each latency(i) scans min..max: skip histograms that would take minutes.
   if distinct > limit or distinct * (latency.max - latency.min) > 3e9 then
      file:write("truncated\n")
      distinct = 0
   end
   for i = 1, distinct do
      local value, count = latency(i)
      file:write(string.format("%d %d\n", value, count))
   end
   file:close()
end
