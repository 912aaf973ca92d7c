#!/bin/sh
# Regenerates the clip that the built-in live demo publisher (server/src/demo/) loops forever.
# Run once by hand when the clip must change: `sh server/assets/demo/generate.sh` (ffmpeg >= 5.1).
# The server never runs ffmpeg; it embeds these files with include_bytes!.
#
# What the Rust side relies on (checked by the unit tests in server/src/demo/clip.rs):
# - 3 renditions (1080p, 720p, 480p), each cut into 8 chunks c0.ts..c7.ts of exactly 0.5 s
#   (15 frames at 30 fps): a 4 s loop. Each chunk is a self-contained MPEG-TS file starting with
#   PAT/PMT and an IDR frame, so a chunk can be served as an LL-HLS part on its own and 4 chunks
#   concatenated make a 2 s segment.
# - H.264 Main profile without B-frames (PTS == DTS, every chunk is independently decodable) and
#   AAC-LC mono at 32 kHz. 4 s holds a whole number of AAC frames (4 * 32000 / 1024 = 125) and of
#   video frames (120), so adding 4 s to every timestamp per loop gives gapless, monotonic
#   timestamps on both tracks. 48 kHz would need an 8 s loop (375 frames) for the same property.
# - The loop is cut from the middle (4 s..8 s) of a 12 s encode so the AAC frames at the loop
#   point are steady-state ones (no encoder priming), and the tone (440 Hz with a beep each second)
#   is periodic over 4 s, so the loop point is inaudible.
set -eu
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
label() { # drawtext filter that stamps the rendition name, so a player's switch is visible
  echo "drawtext=fontfile=$font:text=$1:x=w/20:y=h/20:fontsize=h/10:fontcolor=white:box=1:boxcolor=black@0.6"
}

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=12" \
  -f lavfi -i "sine=frequency=440:beep_factor=2:sample_rate=32000:duration=12" \
  -filter_complex "[0:v]split=3[a][b][c];[a]$(label 1080p)[v1080];[b]scale=1280:720,$(label 720p)[v720];[c]scale=854:480,$(label 480p)[v480]" \
  -map "[v1080]" -map "[v720]" -map "[v480]" -map 1:a -map 1:a -map 1:a \
  -c:v libx264 -threads:v 1 -profile:v main -preset veryfast -pix_fmt yuv420p \
  -g 15 -keyint_min 15 -sc_threshold 0 -bf 0 -force_key_frames "expr:gte(t,n_forced*0.5)" \
  -b:v:0 360k -maxrate:v:0 400k -bufsize:v:0 200k \
  -b:v:1 220k -maxrate:v:1 250k -bufsize:v:1 125k \
  -b:v:2 130k -maxrate:v:2 150k -bufsize:v:2 75k \
  -c:a aac -b:a 32k -ac 1 -ar 32000 \
  -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
  -f hls -hls_time 0.5 -hls_playlist_type vod -hls_list_size 0 \
  -hls_segment_filename "$work/%v/c%d.ts" \
  -var_stream_map "v:0,a:0,name:1080p v:1,a:1,name:720p v:2,a:2,name:480p" \
  "$work/%v/index.m3u8"

for r in 1080p 720p 480p; do
  # 24 chunks were written (12 s); keep the middle 4 s as c0..c7.
  n=$(grep -c '^c[0-9]*\.ts$' "$work/$r/index.m3u8")
  [ "$n" -eq 24 ] || { echo "expected 24 chunks of 0.5 s for $r, got $n" >&2; exit 1; }
  rm -rf "$r"
  mkdir "$r"
  i=0
  while [ $i -lt 8 ]; do
    cp "$work/$r/c$((i + 8)).ts" "$r/c$i.ts"
    i=$((i + 1))
  done
done
