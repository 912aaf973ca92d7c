//! Durations as people type them on a command line: `500ms`, `10s`, `2m`, `1h`, `1.5s`,
//! `250us`, or a plain number of seconds.

use std::time::Duration;

const UNITS: [(&str, f64); 8] = [
    ("us", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("sec", 1.0),
    ("m", 60.0),
    ("min", 60.0),
    ("h", 3600.0),
    ("", 1.0),
];

/// Parse a non-negative duration. Only plain decimals are accepted (no sign, no exponent),
/// so `-1s` and `1e-2` are errors that say what to write instead.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let hint = "write e.g. 500ms, 10s, 2m or 1h (a plain number is seconds)";
    if num.is_empty() || num.bytes().filter(|&b| b == b'.').count() > 1 || num == "." {
        return Err(format!("{s:?} is not a duration: {hint}"));
    }
    let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(format!(
            "{s:?}: unknown unit {unit:?}; use us, ms, s, m or h ({hint})"
        ));
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: {hint}"))?;
    let secs = v * scale;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too long a duration"))
}

/// Parse and check `min <= d <= max`, naming both bounds in the error.
pub fn parse_within(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse(s)?;
    if d < min || d > max {
        return Err(format!(
            "{s:?} is out of range: use a duration from {} to {}",
            display(min),
            display(max)
        ));
    }
    Ok(d)
}

/// Short human form that round-trips through `parse`: `250us`, `500ms`, `1.5s`, `2m`, `1h`.
pub fn display(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        return "0s".into();
    }
    if us < 1000 {
        return format!("{us}us");
    }
    if us < 1_000_000 {
        return trim_float(us as f64 / 1e3, "ms");
    }
    let secs = d.as_secs_f64();
    if secs >= 3600.0 && secs % 3600.0 == 0.0 {
        return format!("{}h", secs as u64 / 3600);
    }
    if secs >= 60.0 && secs % 60.0 == 0.0 {
        return format!("{}m", secs as u64 / 60);
    }
    trim_float(secs, "s")
}

fn trim_float(v: f64, unit: &str) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse(" 10 "), Ok(Duration::from_secs(10)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refused_forms_say_what_to_write() {
        for bad in ["", "ten", "-1s", "1e-2", "1.2.3s", ".", "5 parsecs", "1d"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("500ms") || e.contains("unit"), "{bad}: {e}");
        }
        assert!(parse("99999999999999999999999h").is_err());
    }

    #[test]
    fn bounds() {
        let (min, max) = (Duration::from_millis(10), Duration::from_secs(3600));
        assert!(parse_within("1h", min, max).is_ok());
        let e = parse_within("2h", min, max).unwrap_err();
        assert!(e.contains("10ms") && e.contains("1h"), "{e}");
        assert!(parse_within("1ms", min, max).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["250us", "10ms", "1.5s", "2m", "1h", "90s", "0.01s"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&display(d)), Ok(d), "{s} -> {}", display(d));
        }
        assert_eq!(display(Duration::from_millis(10)), "10ms");
        assert_eq!(display(Duration::from_secs(3600)), "1h");
    }
}
