-- Viewer mix for wrk: the request ratio real HLS players produce on a live stream with 2 s
-- segments. Per target duration each player reloads its media playlist once and fetches one
-- new segment; a master playlist is fetched once per session (here: 1 in 100 pairs, i.e.
-- a viewer that stays ~3 minutes). Renditions are weighted 30% 5 Mbit/s, 50% 2.5, 20% 1.
-- Every wrk thread walks the same deterministic cycle, spread over 6 segments per rendition.
local cycle = {}
local renditions = { "r5000", "r5000", "r5000", "r2500", "r2500", "r2500", "r2500", "r2500", "r1000", "r1000" }
for i = 0, 99 do
   local r = renditions[(i % #renditions) + 1]
   if i == 0 then cycle[#cycle + 1] = "/master.m3u8" end
   cycle[#cycle + 1] = "/" .. r .. "/index.m3u8"
   cycle[#cycle + 1] = "/" .. r .. "/seg" .. (i % 6) .. ".ts"
end
local n = 0
request = function()
   n = n + 1
   if n > #cycle then n = 1 end
   return wrk.format("GET", cycle[n])
end
