//! Running wrk and reading what it prints.
//!
//! Two sources are parsed: wrk's own text report (`Requests/sec`, `Transfer/sec`, the
//! `--latency` distribution, `Socket errors`, `Non-2xx`) and the machine lines our Lua `done()`
//! hook (`lua/report.lua`) adds: `CSBENCH summary ...` and `CSBENCH q P US` quantiles. The
//! quantile grid lets the harness merge several wrk processes into one latency distribution
//! (wrk cannot export its histogram cheaply: its Lua `latency(i)` is O(range) per call).

use std::collections::BTreeMap;

/// One wrk process's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub bytes: u64,
    pub duration_s: f64,
    pub req_per_s: f64,
    pub bytes_per_s: f64,
    pub errors: Errors,
    /// Latency quantiles: percentile -> milliseconds. From `--latency` (50/75/90/99) or the
    /// finer Lua grid when present.
    pub quantiles_ms: BTreeMap<Pct, f64>,
}

/// A percentile as an integer number of thousandths (99.9 -> 99900) so it can key a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pct(pub u32);

impl Pct {
    pub fn from_f64(p: f64) -> Pct {
        Pct((p * 1000.0).round() as u32)
    }
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    /// Responses with a status outside 2xx/3xx.
    pub status: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.status
    }
    pub fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.timeout += o.timeout;
        self.status += o.status;
    }
}

/// "1.23ms" / "850.00us" / "2.01s" / "1.5m" -> milliseconds. wrk always prints a unit, so a
/// bare number is not one of its durations (the shared parser would read it as seconds).
pub fn parse_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.ends_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let d = corestream_common::duration::parse(s).ok()?;
    Some(d.as_nanos() as f64 / 1e6)
}

/// "12.34MB" / "512.00KB" / "100B" / "1.2GB" -> bytes (wrk uses powers of 1024).
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let units = [
        ("TB", 1024f64.powi(4)),
        ("GB", 1024f64.powi(3)),
        ("MB", 1024f64.powi(2)),
        ("KB", 1024.0),
        ("B", 1.0),
    ];
    for (suffix, mult) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|v| v * mult);
        }
    }
    None
}

fn kv(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Parse wrk's stdout. Fails when the report has no `Requests/sec` line (wrk did not run).
pub fn parse(out: &str) -> Result<WrkResult, String> {
    let mut r = WrkResult::default();
    let mut seen_rate = false;
    let mut in_dist = false;
    let mut lua_q: BTreeMap<Pct, f64> = BTreeMap::new();
    let mut lua_summary = false;
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("CSBENCH ") {
            if rest.starts_with("summary") {
                lua_summary = true;
                r.requests = kv(rest, "requests").unwrap_or(0);
                r.bytes = kv(rest, "bytes").unwrap_or(0);
                r.duration_s = kv(rest, "duration_us").unwrap_or(0) as f64 / 1e6;
                r.errors = Errors {
                    connect: kv(rest, "connect").unwrap_or(0),
                    read: kv(rest, "read").unwrap_or(0),
                    write: kv(rest, "write").unwrap_or(0),
                    timeout: kv(rest, "timeout").unwrap_or(0),
                    status: kv(rest, "status").unwrap_or(0),
                };
            } else if let Some(q) = rest.strip_prefix("q ") {
                let mut it = q.split_whitespace();
                if let (Some(p), Some(us)) = (it.next(), it.next()) {
                    if let (Ok(p), Ok(us)) = (p.parse::<f64>(), us.parse::<f64>()) {
                        lua_q.insert(Pct::from_f64(p), us / 1000.0);
                    }
                }
            }
            continue;
        }
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            // "     50%  1.23ms"
            let mut it = t.split_whitespace();
            match (it.next(), it.next()) {
                (Some(p), Some(v)) if p.ends_with('%') => {
                    if let (Ok(p), Some(ms)) =
                        (p.trim_end_matches('%').parse::<f64>(), parse_duration_ms(v))
                    {
                        r.quantiles_ms.insert(Pct::from_f64(p), ms);
                    }
                    continue;
                }
                _ => in_dist = false,
            }
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.req_per_s = v
                .trim()
                .parse()
                .map_err(|_| format!("bad Requests/sec line: {t}"))?;
            seen_rate = true;
        } else if let Some(v) = t.strip_prefix("Transfer/sec:") {
            r.bytes_per_s = parse_bytes(v).ok_or_else(|| format!("bad Transfer/sec line: {t}"))?;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "Socket errors: connect 0, read 12, write 0, timeout 3"
            if !lua_summary {
                for part in v.split(',') {
                    let mut it = part.split_whitespace();
                    if let (Some(k), Some(n)) = (it.next(), it.next().and_then(|n| n.parse().ok()))
                    {
                        match k {
                            "connect" => r.errors.connect = n,
                            "read" => r.errors.read = n,
                            "write" => r.errors.write = n,
                            "timeout" => r.errors.timeout = n,
                            _ => {}
                        }
                    }
                }
            }
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            if !lua_summary {
                r.errors.status = v.trim().parse().unwrap_or(0);
            }
        } else if t.contains("requests in ") && t.contains(" read") && !lua_summary {
            // "  634263 requests in 10.01s, 458.03MB read"
            let mut it = t.split_whitespace();
            r.requests = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let rest: Vec<&str> = t.split(" in ").nth(1).unwrap_or("").split(',').collect();
            if let Some(d) = rest.first().and_then(|d| parse_duration_ms(d)) {
                r.duration_s = d / 1000.0;
            }
            if let Some(b) = rest
                .get(1)
                .and_then(|b| parse_bytes(b.trim().trim_end_matches(" read")))
            {
                r.bytes = b as u64;
            }
        }
    }
    if !seen_rate {
        return Err("wrk printed no 'Requests/sec' line (did it fail to connect?)".into());
    }
    if !lua_q.is_empty() {
        r.quantiles_ms = lua_q;
    }
    if lua_summary && r.duration_s > 0.0 {
        // Exact figures beat wrk's rounded "Transfer/sec: 1.23MB".
        r.req_per_s = r.requests as f64 / r.duration_s;
        r.bytes_per_s = r.bytes as f64 / r.duration_s;
    }
    Ok(r)
}

#[cfg(test)]
/// Quantile `p` (0..=100) of one result's grid, interpolated linearly.
#[cfg(test)]
pub fn quantile(q: &BTreeMap<Pct, f64>, p: f64) -> Option<f64> {
    let pts: Vec<(f64, f64)> = q.iter().map(|(k, v)| (k.as_f64(), *v)).collect();
    let first = pts.first()?;
    if p <= first.0 {
        return Some(first.1);
    }
    for w in pts.windows(2) {
        let ((p0, v0), (p1, v1)) = (w[0], w[1]);
        if p <= p1 {
            let f = if p1 > p0 { (p - p0) / (p1 - p0) } else { 1.0 };
            return Some(v0 + f * (v1 - v0));
        }
    }
    pts.last().map(|x| x.1)
}

/// Fraction (0..=100) of one result's requests at or below `x` ms, from its quantile grid.
fn cdf(pts: &[(f64, f64)], x: f64) -> f64 {
    let Some(&(p_first, v_first)) = pts.first() else {
        return 0.0;
    };
    if x < v_first {
        return if v_first > 0.0 {
            p_first * (x / v_first).max(0.0)
        } else {
            0.0
        };
    }
    for w in pts.windows(2) {
        let ((p0, v0), (p1, v1)) = (w[0], w[1]);
        if x < v1 {
            let f = if v1 > v0 { (x - v0) / (v1 - v0) } else { 1.0 };
            return p0 + f * (p1 - p0);
        }
    }
    100.0
}

/// Merge several wrk processes: sums for counts and rates, and the latency distribution as
/// the request-weighted mixture of each process's quantile curve (bisection on its CDF).
pub fn merge(parts: &[WrkResult]) -> WrkResult {
    let mut m = WrkResult::default();
    for p in parts {
        m.requests += p.requests;
        m.bytes += p.bytes;
        m.req_per_s += p.req_per_s;
        m.bytes_per_s += p.bytes_per_s;
        m.duration_s = m.duration_s.max(p.duration_s);
        m.errors.add(&p.errors);
    }
    if parts.len() == 1 {
        m.quantiles_ms = parts[0].quantiles_ms.clone();
        return m;
    }
    // A process that completed no request has an all-zero grid, not a fast one: leave it out.
    let curves: Vec<(f64, Vec<(f64, f64)>)> = parts
        .iter()
        .filter(|p| !p.quantiles_ms.is_empty() && p.requests > 0)
        .map(|p| {
            (
                p.requests as f64,
                p.quantiles_ms
                    .iter()
                    .map(|(k, v)| (k.as_f64(), *v))
                    .collect(),
            )
        })
        .collect();
    let total_w: f64 = curves.iter().map(|c| c.0).sum();
    if curves.is_empty() || total_w <= 0.0 {
        return m;
    }
    let hi = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|x| x.1))
        .fold(0.0f64, f64::max);
    let keys: Vec<Pct> = parts
        .iter()
        .flat_map(|p| p.quantiles_ms.keys().copied())
        .collect();
    for k in keys {
        let target = k.as_f64();
        let (mut lo, mut up) = (0.0f64, hi);
        for _ in 0..60 {
            let mid = (lo + up) / 2.0;
            let f: f64 = curves.iter().map(|(w, c)| w * cdf(c, mid)).sum::<f64>() / total_w;
            if f < target {
                lo = mid;
            } else {
                up = mid;
            }
        }
        m.quantiles_ms.insert(k, up);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from `wrk -t2 -c100 -d2s --latency http://127.0.0.1:18080/playlist.m3u8`
    // (wrk debian/4.1.0) on the bench host.
    const PLAIN: &str = "Running 2s test @ http://127.0.0.1:18080/playlist.m3u8
  2 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.61ms    2.08ms  32.21ms   88.69%
    Req/Sec    29.79k     3.08k   36.39k    72.50%
  Latency Distribution
     50%  838.00us
     75%    1.95ms
     90%    3.91ms
     99%   14.05ms
  118500 requests in 2.00s, 87.70MB read
  Socket errors: connect 0, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 5
Requests/sec:  59250.17
Transfer/sec:     43.85MB
";

    #[test]
    fn parses_plain_report() {
        let r = parse(PLAIN).unwrap();
        assert_eq!(r.requests, 118500);
        assert!((r.duration_s - 2.0).abs() < 1e-9);
        assert!((r.req_per_s - 59250.17).abs() < 1e-6);
        assert!((r.bytes_per_s - 43.85 * 1048576.0).abs() < 1.0);
        assert_eq!(r.bytes, (87.70 * 1048576.0) as u64);
        assert_eq!(
            r.errors,
            Errors {
                connect: 0,
                read: 3,
                write: 0,
                timeout: 7,
                status: 5
            }
        );
        assert_eq!(r.quantiles_ms.len(), 4);
        assert!((r.quantiles_ms[&Pct::from_f64(50.0)] - 0.838).abs() < 1e-9);
        assert!((r.quantiles_ms[&Pct::from_f64(99.0)] - 14.05).abs() < 1e-9);
    }

    #[test]
    fn lua_lines_override_rounded_figures() {
        let out = format!(
            "{PLAIN}CSBENCH summary requests=1000 bytes=2000000 duration_us=2000000 connect=1 read=0 write=0 status=2 timeout=0\nCSBENCH q 50 1000\nCSBENCH q 99.9 5500\n"
        );
        let r = parse(&out).unwrap();
        assert_eq!(r.requests, 1000);
        assert!((r.req_per_s - 500.0).abs() < 1e-9);
        assert!((r.bytes_per_s - 1_000_000.0).abs() < 1e-9);
        assert_eq!(r.errors.connect, 1);
        assert_eq!(r.errors.status, 2);
        assert_eq!(r.errors.read, 0, "Lua summary replaces the text error line");
        assert_eq!(r.quantiles_ms.len(), 2);
        assert!((r.quantiles_ms[&Pct(99900)] - 5.5).abs() < 1e-9);
    }

    #[test]
    fn rejects_output_without_rate() {
        let e = parse("unable to connect to 127.0.0.1:1 Connection refused\n").unwrap_err();
        assert!(e.contains("Requests/sec"));
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration_ms("850.00us"), Some(0.85));
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(parse_duration_ms("1.00m"), Some(60000.0));
        assert_eq!(parse_duration_ms("12"), None);
        assert_eq!(parse_bytes("1.00KB"), Some(1024.0));
        assert_eq!(parse_bytes("2.00GB"), Some(2.0 * 1073741824.0));
        assert_eq!(parse_bytes("512B"), Some(512.0));
        assert_eq!(parse_bytes("x"), None);
    }

    fn grid(scale: f64, requests: u64) -> WrkResult {
        let mut q = BTreeMap::new();
        for p in [0.0, 50.0, 99.0, 99.9, 100.0] {
            // Uniform latency on [0, 10*scale] ms.
            q.insert(Pct::from_f64(p), p / 10.0 * scale);
        }
        WrkResult {
            requests,
            req_per_s: requests as f64,
            quantiles_ms: q,
            ..Default::default()
        }
    }

    #[test]
    fn merge_of_identical_parts_keeps_quantiles() {
        let m = merge(&[grid(1.0, 100), grid(1.0, 100), grid(1.0, 100)]);
        assert_eq!(m.requests, 300);
        for (k, v) in &m.quantiles_ms {
            assert!((v - k.as_f64() / 10.0).abs() < 1e-6, "{k:?} {v}");
        }
    }

    #[test]
    fn merge_ignores_parts_without_requests() {
        let mut idle = grid(0.0, 0);
        idle.req_per_s = 0.0;
        let m = merge(&[grid(1.0, 100), idle.clone(), idle]);
        let p50 = m.quantiles_ms[&Pct::from_f64(50.0)];
        assert!((p50 - 5.0).abs() < 1e-3, "{p50}");
        let none = merge(&[grid(0.0, 0), grid(0.0, 0)]);
        assert!(none.quantiles_ms.is_empty());
    }

    #[test]
    fn merge_weights_by_requests() {
        // 100 fast requests on [0,10] ms and 100 slow on [0,20] ms: the mixture's median x
        // solves x/10/2 + x/20/2 = 0.5 -> x = 6.667 ms.
        let m = merge(&[grid(1.0, 100), grid(2.0, 100)]);
        let p50 = m.quantiles_ms[&Pct::from_f64(50.0)];
        assert!((p50 - 20.0 / 3.0).abs() < 1e-3, "{p50}");
        // Weighted 3:1 towards the slow one, the median moves up.
        let m = merge(&[grid(1.0, 100), grid(2.0, 300)]);
        assert!(m.quantiles_ms[&Pct::from_f64(50.0)] > p50);
        assert!((quantile(&m.quantiles_ms, 100.0).unwrap() - 20.0).abs() < 1e-3);
    }
}
