-- Shared wrk done() hook for corestream-bench: prints exact totals and a fine latency
-- quantile grid (microseconds) that the harness parses and merges across wrk processes.
-- Loaded by the scenario scripts via dofile(); usable alone with `wrk -s report.lua`.
local grid = {}
for p = 1, 99 do grid[#grid + 1] = p end
for i = 1, 9 do grid[#grid + 1] = 99 + i / 10 end
for i = 1, 9 do grid[#grid + 1] = 99.9 + i / 100 end
grid[#grid + 1] = 99.999

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "CSBENCH summary requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.bytes, summary.duration,
      e.connect, e.read, e.write, e.status, e.timeout))
   io.write(string.format("CSBENCH q 0 %d\n", latency.min))
   for _, p in ipairs(grid) do
      io.write(string.format("CSBENCH q %g %d\n", p, latency:percentile(p)))
   end
   io.write(string.format("CSBENCH q 100 %d\n", latency.max))
end
