//! UTC calendar dates from Unix time, for the few timestamp formats we print: RFC 3339
//! (playlists' PROGRAM-DATE-TIME, backups, JSON logs) and the common log format, and back
//! from RFC 3339 (the load harness reads PROGRAM-DATE-TIME). HTTP dates use the `httpdate`
//! crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant broken into calendar fields (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub milli: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Civil {
    /// From milliseconds since 1970-01-01T00:00:00Z (negative is before).
    pub fn from_unix_ms(ms: i64) -> Civil {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        // Days to civil date: Howard Hinnant's algorithm (eras of 400 years).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: (rem / 3_600_000) as u32,
            minute: (rem / 60_000 % 60) as u32,
            second: (rem / 1000 % 60) as u32,
            milli: (rem % 1000) as u32,
        }
    }

    pub fn from_unix_secs(secs: u64) -> Civil {
        Civil::from_unix_ms(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX))
    }

    pub fn from_system_time(t: SystemTime) -> Civil {
        let ms = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Civil::from_unix_ms(ms)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z: the inverse of [`Civil::from_unix_ms`].
    pub fn to_unix_ms(&self) -> i64 {
        // Civil date to days: Howard Hinnant's algorithm, the inverse of the one above.
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400_000
            + i64::from(self.hour) * 3_600_000
            + i64::from(self.minute) * 60_000
            + i64::from(self.second) * 1000
            + i64::from(self.milli)
    }

    /// `2026-11-24T18:36:55.123Z`
    pub fn rfc3339_millis(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.milli
        )
    }

    /// `20261124T183655.123Z`: sorts like the time and is safe in a file name.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.milli
        )
    }

    /// `10/Oct/2000:13:55:36 +0000` (the common and combined log formats).
    pub fn clf(&self) -> String {
        format!(
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            self.day,
            MONTHS[(self.month as usize).saturating_sub(1) % 12],
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// An RFC 3339 date-time (`2026-11-24T18:36:55.123Z`, `2010-02-19T14:54:23.031+08:00`; any
/// number of fraction digits, kept to the millisecond) as milliseconds since the Unix epoch.
/// None for anything else, including out-of-range fields.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<u32> {
        let t = s.get(a..b)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: &[u8]| s.as_bytes().get(i).is_some_and(|b| c.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    let mut milli = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms = format!("{:0<3}", &f[..digits.min(3)]);
        milli = ms.parse().ok()?;
        rest = &f[digits..];
    }
    let offset_min: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest[1..].replace(':', "");
            if hm.len() != 4 || !hm.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            sign * (hm[..2].parse::<i64>().ok()? * 60 + hm[2..].parse::<i64>().ok()?)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60 is a leap second; it reads as the first instant of the next minute.
    if second > 60 {
        return None;
    }
    let c = Civil {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
        milli,
    };
    Some(c.to_unix_ms() - offset_min * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(
            Civil::from_unix_ms(0).rfc3339_millis(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Civil::from_unix_ms(1_764_009_415_123).rfc3339_millis(),
            "2025-11-24T18:36:55.123Z"
        );
        assert_eq!(
            Civil::from_unix_secs(971_186_136).clf(),
            "10/Oct/2000:13:55:36 +0000"
        );
        // Leap day, and before the epoch.
        assert_eq!(
            Civil::from_unix_secs(951_782_400).rfc3339_millis(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Civil::from_unix_ms(-1).rfc3339_millis(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Civil::from_unix_ms(1_764_009_415_123).compact(),
            "20251124T183655.123Z"
        );
    }

    #[test]
    fn parses_what_it_prints_and_offsets() {
        for ms in [0, 1_764_009_415_123, 951_782_400_000, -1, 4_102_444_800_000] {
            let t = Civil::from_unix_ms(ms);
            assert_eq!(t.to_unix_ms(), ms);
            assert_eq!(parse_rfc3339_ms(&t.rfc3339_millis()), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_ms("2010-02-19T14:54:23.031+08:00"),
            parse_rfc3339_ms("2010-02-19T06:54:23.031Z")
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-24T18:36:55Z"),
            Some(1_764_009_415_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-24T18:36:55.1234567-0100"),
            Some(1_764_009_415_123 + 3_600_000)
        );
        for bad in [
            "",
            "2025-11-24",
            "2025-11-24T18:36:55",
            "2025-13-24T18:36:55Z",
            "2025-11-24T18:36:55.Z",
            "2025-11-24T18:36:55+8",
            "x025-11-24T18:36:55Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn agrees_with_httpdate_every_day_for_a_century() {
        for day in 0..36_600u64 {
            let secs = day * 86_400 + 45_296;
            let c = Civil::from_unix_secs(secs);
            let http = httpdate_like(secs);
            assert!(http.contains(&format!("{:02} ", c.day)), "{secs}");
            assert!(http.contains(&format!(" {} ", c.year)), "{secs}");
        }
    }

    // The day count of a proleptic year, done the slow way, as an independent check.
    fn httpdate_like(secs: u64) -> String {
        let mut days = secs / 86_400;
        let mut year = 1970;
        loop {
            let len = if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                366
            } else {
                365
            };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let lens = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut d = days;
        for l in lens {
            if d < l {
                break;
            }
            d -= l;
        }
        format!("{:02} x {} ", d + 1, year)
    }
}
