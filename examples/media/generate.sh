#!/bin/sh
# Regenerates the committed sample HLS VOD stream (examples/media/) with ffmpeg.
# Run from anywhere: `sh examples/media/generate.sh`. Needs ffmpeg (tested with 5.1, Debian 12).
#
# Output: master.m3u8 + 1080p/ 720p/ 480p/ each with index.m3u8 and 4 MPEG-TS segments of 2 s
# (H.264 main profile + AAC-LC, keyframe every 2 s so every segment starts with an IDR).
# Bitrates are deliberately tiny so the whole tree stays a few hundred KB in git.
set -eu
cd "$(dirname "$0")"
rm -rf 1080p 720p 480p master.m3u8

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=8" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=8" \
  -filter_complex "[0:v]split=3[v1][v2][v3];[v1]null[v1080];[v2]scale=1280:720[v720];[v3]scale=854:480[v480]" \
  -map "[v1080]" -map "[v720]" -map "[v480]" -map 1:a -map 1:a -map 1:a \
  -c:v libx264 -threads:v 1 -profile:v main -preset veryfast -pix_fmt yuv420p \
  -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
  -b:v:0 140k -maxrate:v:0 160k -bufsize:v:0 280k \
  -b:v:1 90k  -maxrate:v:1 100k -bufsize:v:1 180k \
  -b:v:2 50k  -maxrate:v:2 60k  -bufsize:v:2 100k \
  -c:a aac -b:a 32k -ac 1 -ar 48000 \
  -flags +cgop -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_list_size 0 \
  -hls_segment_filename "%v/seg%d.ts" \
  -master_pl_name master.m3u8 \
  -var_stream_map "v:0,a:0,name:1080p v:1,a:1,name:720p v:2,a:2,name:480p" \
  "%v/index.m3u8"

# ffmpeg's master playlist declares BANDWIDTH from the encoder's target bitrates, which is lower
# than what the MPEG-TS segments really peak at (container overhead, VBV overshoot). RFC 8216
# 4.3.4.2 wants BANDWIDTH >= the peak segment bit rate, so rewrite the master from the files.
# Keep the CODECS/RESOLUTION ffmpeg derived from the encoded streams.
peak_avg() {
  # prints "PEAK AVERAGE" in bits/s for the media playlist $1
  awk -v dir="$(dirname "$1")" '
    /^#EXTINF:/ { sub(/^#EXTINF:/, ""); sub(/,.*/, ""); dur = $0 + 0; next }
    /^[^#]/ && NF {
      cmd = "stat -c %s \"" dir "/" $0 "\""; cmd | getline size; close(cmd)
      rate = size * 8 / dur; if (rate > peak) peak = rate
      bytes += size; total += dur
    }
    END { printf "%d %d\n", peak + 0.5, bytes * 8 / total + 0.5 }' "$1"
}
{
  echo "#EXTM3U"
  echo "#EXT-X-VERSION:3"
  echo "#EXT-X-INDEPENDENT-SEGMENTS"
  awk '/^#EXT-X-STREAM-INF:/ { inf = $0; next } /^[^#]/ && NF { print inf; print $0 }' master.m3u8 |
    while read -r inf && read -r uri; do
      set -- $(peak_avg "$uri")
      attrs=$(echo "$inf" | sed -e 's/^#EXT-X-STREAM-INF://' -e 's/BANDWIDTH=[0-9]*,//')
      echo "#EXT-X-STREAM-INF:BANDWIDTH=$1,AVERAGE-BANDWIDTH=$2,$attrs"
      echo "$uri"
    done
} > master.m3u8.tmp
mv master.m3u8.tmp master.m3u8
