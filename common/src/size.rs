//! Byte sizes as people type them on a command line: `65536`, `64KiB`, `64MiB`, `2GiB`
//! (powers of 1024; `k`, `M`, `G` and `KB`, `MB`, `GB` mean the same here, as in most
//! server configuration files).

/// Parse a size in bytes.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let hint = "write e.g. 65536, 512KiB, 64MiB or 2GiB";
    if num.is_empty() {
        return Err(format!("{s:?} is not a size: {hint}"));
    }
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; {hint}")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{s:?} is too large a size"))
}

/// Short human form: `64MiB`, `1.5GiB`, `512B`.
pub fn display(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, scale) in UNITS {
        if bytes >= scale {
            let v = bytes as f64 / scale as f64;
            let s = format!("{v:.1}");
            return format!("{}{name}", s.trim_end_matches(".0"));
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("65536"), Ok(65536));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("64M"), Ok(64 << 20));
        assert_eq!(parse(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse("512kb"), Ok(512 << 10));
        for bad in ["", "MiB", "-1", "1.5MiB", "12 parsecs", "99999999999999TiB"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(display(64 << 20), "64MiB");
        assert_eq!(display(1536 << 20), "1.5GiB");
        assert_eq!(display(100), "100B");
    }
}
