-- wrk script of the peer benchmark: a new `?key=` on every request, and at the end
-- wrk's latency histogram (value in µs, count) written to $WRK_HISTOGRAM so that
-- peers.py can take out the synthetic samples wrk's coordinated-omission correction
-- added and report raw percentiles.
--
-- $WRK_CLOSE=1 adds `Connection: close` to every request.
-- $WRK_KEY_HEADER=NAME sends the key in header NAME instead of `?key=`.
-- $WRK_PATH is the path of GETs (default `/`).
-- $WRK_POST_EVERY=N makes every Nth request a POST of a 4 KiB body to $WRK_POST_PATH.
-- $WRK_CHUNKED_EVERY=N makes every Nth request (offset by half of N from the POSTs)
-- a GET of $WRK_CHUNKED_PATH (a path the backends answer with a chunked body).

local counter = 0
local prefix = tostring(math.random(1, 1000000000))
local close = os.getenv("WRK_CLOSE") == "1"
local post_every = tonumber(os.getenv("WRK_POST_EVERY") or "0")
local body = string.rep("x", 4096)
local path = os.getenv("WRK_PATH") or "/"
local post_path = os.getenv("WRK_POST_PATH") or path
local chunked_every = tonumber(os.getenv("WRK_CHUNKED_EVERY") or "0")
local chunked_path = os.getenv("WRK_CHUNKED_PATH") or path
local key_header = os.getenv("WRK_KEY_HEADER")

request = function()
   counter = counter + 1
   local headers = {}
   if close then
      headers["Connection"] = "close"
   end
   local key = "?key=" .. prefix .. "-" .. counter
   if key_header ~= nil then
      headers[key_header] = prefix .. "-" .. counter
      key = ""
   end
   if post_every > 0 and counter % post_every == 0 then
      headers["Content-Type"] = "application/octet-stream"
      return wrk.format("POST", post_path .. key, headers, body)
   end
   if chunked_every > 0 and counter % chunked_every == math.floor(chunked_every / 2) then
      return wrk.format("GET", chunked_path .. key, headers)
   end
   return wrk.format("GET", path .. key, headers)
end

done = function(summary, latency, requests)
   local out = os.getenv("WRK_HISTOGRAM")
   if out == nil then
      return
   end
   local file = assert(io.open(out, "w"))
   file:write(string.format("duration_us %d\nrequests %d\n", summary.duration, summary.requests))
   -- wrk's `latency(i)` scans the histogram from its minimum on every call, which takes
   -- minutes at -c1024 and above; read wrk's `stats` struct (src/stats.h: count, limit,
   -- min, max, data[] indexed by µs) once through LuaJIT's FFI instead.
   local ok, ffi = pcall(require, "ffi")
   if not ok then
      file:write("truncated\n")
      file:close()
      return
   end
   pcall(ffi.cdef, [[
      typedef struct { uint64_t count, limit, min, max; uint64_t data[1]; } wrk_stats;
   ]])
   local stats = ffi.cast("wrk_stats **", latency)[0]
   local low, high = tonumber(stats.min), tonumber(stats.max)
   if high >= tonumber(stats.limit) then
      high = tonumber(stats.limit) - 1
   end
   for value = low, high do
      local count = stats.data[value]
      if count ~= 0 then
         file:write(string.format("%d %d\n", value, tonumber(count)))
      end
   end
   file:close()
end
