//! Common Media Client Data (CTA-5004): what a player says about itself on each request, in
//! the `CMCD` query argument (percent-encoded, as hls.js and dash.js send it) or in the
//! `CMCD-Object`, `CMCD-Request`, `CMCD-Session` and `CMCD-Status` headers.
//!
//! Hand-written rather than an RFC 8941 parser (the `sfv` crate): a structured-field parser
//! rejects a whole dictionary for one bad member, while CTA-5004 asks servers to keep what
//! they can (unknown keys kept, a malformed value ignored), and players in the field send
//! custom keys with capitals (`com.example-myNumericKey`) that RFC 8941 keys may not have.

/// Bytes of one CMCD payload read; the rest is ignored (players send ~200).
pub const MAX_INPUT: usize = 4096;
/// Members kept per request; a hostile 10,000-key payload keeps the first ones.
pub const MAX_KEYS: usize = 32;
/// Longest key and string value kept (CTA-5004 caps strings at 64 characters).
const MAX_KEY: usize = 64;
const MAX_STRING: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Dec(f64),
    Str(String),
    Token(String),
    Bool(bool),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            // Some players send integer keys as decimals (`bl=1200.5`).
            Value::Dec(v) if v.is_finite() => Some(*v as i64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Token(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// The CMCD of one request: every well-formed member, in the order received; a key given
/// twice keeps its last value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cmcd {
    pub items: Vec<(String, Value)>,
    /// Members dropped because they were malformed or past [`MAX_KEYS`].
    pub ignored: u32,
}

impl Cmcd {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.items
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_int)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A boolean key: present without a value is true (`bs`), `?0` false, absent None.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// Parse one CMCD payload (a header value, or the decoded query value) into `self`.
    pub fn add(&mut self, input: &[u8]) {
        let input = &input[..input.len().min(MAX_INPUT)];
        let mut rest = input;
        while !rest.is_empty() {
            let (member, next) = split_member(rest);
            rest = next;
            let member = trim(member);
            if member.is_empty() {
                continue;
            }
            if self.items.len() >= MAX_KEYS {
                self.ignored = self.ignored.saturating_add(1);
                continue;
            }
            match parse_member(member) {
                Some((k, v)) => {
                    if let Some(slot) = self.items.iter_mut().find(|(key, _)| *key == k) {
                        slot.1 = v;
                    } else {
                        self.items.push((k, v));
                    }
                }
                None => self.ignored = self.ignored.saturating_add(1),
            }
        }
    }

    /// The CMCD a request carries: the `CMCD` query argument and the four headers.
    pub fn from_request<'h>(
        target: &[u8],
        headers: impl IntoIterator<Item = &'h [u8]>,
    ) -> Option<Cmcd> {
        let mut c = Cmcd::default();
        if let Some(q) = query_value(target) {
            let mut buf = Vec::with_capacity(q.len().min(MAX_INPUT));
            percent_decode(q, &mut buf);
            c.add(&buf);
        }
        for h in headers {
            c.add(h);
        }
        (!c.items.is_empty() || c.ignored > 0).then_some(c)
    }
}

/// The raw value of the `CMCD` query argument of a request target, if any.
pub fn query_value(target: &[u8]) -> Option<&[u8]> {
    let q = &target[target.iter().position(|&b| b == b'?')? + 1..];
    let q = q.split(|&b| b == b'#').next().unwrap_or(q);
    q.split(|&b| b == b'&')
        .find_map(|arg| arg.strip_prefix(b"CMCD="))
}

/// `%XX` decoded; a bad escape is kept as written.
fn percent_decode(s: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < s.len() && out.len() < MAX_INPUT {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// The first member of `s` (up to a comma outside a quoted string) and what follows it.
fn split_member(s: &[u8]) -> (&[u8], &[u8]) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b',' {
            return (&s[..i], &s[i + 1..]);
        }
    }
    (s, &[])
}

fn valid_key(k: &[u8]) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY
        && (k[0].is_ascii_alphabetic() || k[0] == b'*')
        && k.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'*'))
}

/// The type CTA-5004 gives each reserved key; a value of another type is malformed.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Dec,
    Str,
    Token,
    Bool,
}

const KEYS: [(&str, Kind); 18] = [
    ("br", Kind::Int),
    ("bl", Kind::Int),
    ("bs", Kind::Bool),
    ("cid", Kind::Str),
    ("d", Kind::Int),
    ("dl", Kind::Int),
    ("mtp", Kind::Int),
    ("nor", Kind::Str),
    ("nrr", Kind::Str),
    ("ot", Kind::Token),
    ("pr", Kind::Dec),
    ("rtp", Kind::Int),
    ("sf", Kind::Token),
    ("sid", Kind::Str),
    ("st", Kind::Token),
    ("su", Kind::Bool),
    ("tb", Kind::Int),
    ("v", Kind::Int),
];

fn fits(key: &str, v: &Value) -> bool {
    let Some((_, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
        return true;
    };
    match (kind, v) {
        (Kind::Int, Value::Int(_))
        | (Kind::Dec, Value::Dec(_) | Value::Int(_))
        | (Kind::Str, Value::Str(_))
        | (Kind::Token, Value::Token(_))
        | (Kind::Bool, Value::Bool(_)) => true,
        // Integers sent as decimals are kept (rounded down) rather than lost.
        (Kind::Int, Value::Dec(d)) => d.is_finite(),
        _ => false,
    }
}

fn parse_member(m: &[u8]) -> Option<(String, Value)> {
    let (key, value) = match m.iter().position(|&b| b == b'=') {
        Some(i) => (&m[..i], Some(&m[i + 1..])),
        None => (m, None),
    };
    if !valid_key(key) {
        return None;
    }
    let key = String::from_utf8(key.to_vec()).ok()?;
    let value = match value {
        None => Value::Bool(true),
        Some(v) => parse_value(v)?,
    };
    fits(&key, &value).then_some((key, value))
}

fn parse_value(v: &[u8]) -> Option<Value> {
    // Structured-field parameters (`;a=b`) are not used by CMCD: drop them.
    let v = if v.first() == Some(&b'"') {
        v
    } else {
        v.split(|&b| b == b';').next().unwrap_or(v)
    };
    match v {
        b"?1" => return Some(Value::Bool(true)),
        b"?0" => return Some(Value::Bool(false)),
        [] => return None,
        _ => {}
    }
    if v[0] == b'"' {
        return parse_string(v).map(Value::Str);
    }
    if v[0] == b'-' || v[0].is_ascii_digit() {
        let s = std::str::from_utf8(v).ok()?;
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        return match digits.bytes().filter(|&b| b == b'.').count() {
            // RFC 8941 integers have at most 15 digits.
            0 if digits.len() <= 15 => s.parse().ok().map(Value::Int),
            1 if !digits.ends_with('.') && !digits.starts_with('.') && digits.len() <= 17 => {
                s.parse().ok().map(Value::Dec)
            }
            _ => None,
        };
    }
    if v[0].is_ascii_alphabetic() || v[0] == b'*' {
        let ok = v.len() <= MAX_STRING
            && v.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
        return ok
            .then(|| String::from_utf8(v.to_vec()).ok())
            .flatten()
            .map(Value::Token);
    }
    None
}

/// An RFC 8941 string: printable ASCII between quotes, `\"` and `\\` the only escapes.
fn parse_string(v: &[u8]) -> Option<String> {
    let inner = v.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = String::new();
    let mut escaped = false;
    for &b in inner {
        if escaped {
            if b != b'"' && b != b'\\' {
                return None;
            }
            out.push(b as char);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' || !(0x20..0x7f).contains(&b) {
            return None;
        } else {
            out.push(b as char);
        }
        if out.len() > MAX_STRING {
            return None;
        }
    }
    (!escaped).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Cmcd {
        let mut c = Cmcd::default();
        c.add(s.as_bytes());
        c
    }

    #[test]
    fn spec_examples() {
        // CTA-5004 section 5 examples (header and query forms).
        let c = parse(
            r#"br=3200,bs,d=4004,mtp=25400,ot=v,rtp=15000,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",tb=6000"#,
        );
        assert_eq!(c.int("br"), Some(3200));
        assert_eq!(c.flag("bs"), Some(true));
        assert_eq!(c.int("d"), Some(4004));
        assert_eq!(c.int("mtp"), Some(25400));
        assert_eq!(c.str("ot"), Some("v"));
        assert_eq!(c.int("rtp"), Some(15000));
        assert_eq!(c.str("sid"), Some("6e2fb550-c457-11e9-bb97-0800200c9a66"));
        assert_eq!(c.int("tb"), Some(6000));
        assert_eq!(c.ignored, 0);

        let c = parse(r#"com.example-myNumericKey=500,com.examplemyStringKey="myStringValue""#);
        assert_eq!(c.int("com.example-myNumericKey"), Some(500));
        assert_eq!(c.str("com.examplemyStringKey"), Some("myStringValue"));

        let c = parse(r#"nor="..%2F300kbps%2Fsegment35.m4v",nrr="12323-48763",sid="6e2fb550""#);
        assert_eq!(c.str("nor"), Some("..%2F300kbps%2Fsegment35.m4v"));
        assert_eq!(c.str("nrr"), Some("12323-48763"));

        let c = parse("bs,su=?0,pr=1.08,v=1,st=l,sf=h");
        assert_eq!(c.flag("su"), Some(false));
        assert!(matches!(c.get("pr"), Some(Value::Dec(p)) if (*p - 1.08).abs() < 1e-9));
        assert_eq!(c.str("st"), Some("l"));
    }

    #[test]
    fn query_form_is_percent_decoded() {
        let target = b"/720p/seg7.ts?x=1&CMCD=bl%3D21300%2Cbr%3D3200%2Cbs%2Ccid%3D%22faec5fc2-ac30-11ea-bb37-0242ac130002%22%2Cd%3D4004%2Cdl%3D18500%2Cmtp%3D48100%2Cot%3Dv%2Csid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22&y=2";
        let c = Cmcd::from_request(target, []).unwrap();
        assert_eq!(c.int("bl"), Some(21300));
        assert_eq!(c.str("cid"), Some("faec5fc2-ac30-11ea-bb37-0242ac130002"));
        assert_eq!(c.int("dl"), Some(18500));
        assert_eq!(c.flag("bs"), Some(true));
        assert!(Cmcd::from_request(b"/a.ts?cmcd=br%3D1", []).is_none());
        assert!(Cmcd::from_request(b"/a.ts", []).is_none());
    }

    /// What hls.js 1.x sent from headless Chromium (captured by the demo_hlsjs test with
    /// CORESTREAM_CAPTURE_CMCD set): every member parses, with its CTA-5004 type.
    #[test]
    fn real_hlsjs_requests() {
        let lines = include_str!("../../tests/fixtures/hlsjs-cmcd.txt");
        let mut segments = 0;
        for q in lines.lines().filter(|l| !l.is_empty()) {
            let c = Cmcd::from_request(format!("/x?CMCD={q}").as_bytes(), []).unwrap();
            assert_eq!(c.ignored, 0, "{q}");
            assert_eq!(c.str("sid"), Some("chromium-session-1"));
            assert_eq!(c.str("cid"), Some("demo-show"));
            assert_eq!(c.str("sf"), Some("h"));
            assert!(c.int("mtp").is_some(), "{q}");
            if c.str("ot") == Some("av") {
                segments += 1;
                assert!(c.int("bl").is_some() && c.int("br").is_some() && c.int("d").is_some());
                assert_eq!(c.str("st"), Some("l"));
            }
        }
        assert!(segments >= 3, "{segments} segment requests in the capture");
    }

    #[test]
    fn headers_merge() {
        let hs: [&[u8]; 4] = [
            b"br=3200,d=4004,ot=v,tb=6000",
            b"bl=21300,mtp=48100",
            br#"cid="x",sid="y""#,
            b"bs",
        ];
        let c = Cmcd::from_request(b"/a.m4s", hs).unwrap();
        assert_eq!(c.items.len(), 9);
        assert_eq!(c.str("sid"), Some("y"));
    }

    #[test]
    fn malformed_members_are_ignored_not_fatal() {
        let c = parse(
            r#"br=abc,bl=12,cid="ok",=5,BAD KEY=1,d=1.2.3,mtp=-5,rtp=99999999999999999,tb="a\q",sid="unterminated,su"#,
        );
        assert_eq!(c.int("bl"), Some(12));
        assert_eq!(c.int("mtp"), Some(-5));
        assert_eq!(c.str("cid"), Some("ok"));
        assert_eq!(
            c.str("sid"),
            None,
            "an unterminated string takes the rest with it"
        );
        assert_eq!(c.items.len(), 3, "{c:?}");
        assert_eq!(c.ignored, 7, "{c:?}");
        let c = parse("\u{0}\u{1}\u{ff},br=1");
        assert_eq!(c.int("br"), Some(1));
    }

    #[test]
    fn hostile_payloads_stay_bounded() {
        let many: String = (0..10_000).map(|i| format!("k{i}={i},")).collect();
        let c = parse(&many);
        assert_eq!(c.items.len(), MAX_KEYS);
        let huge = format!("sid=\"{}\"", "a".repeat(100_000));
        let c = parse(&huge);
        assert!(c.items.is_empty());
        let bin: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        let mut c = Cmcd::default();
        c.add(&bin);
        assert!(c.items.len() <= MAX_KEYS);
        let repeated: String = (0..1000).map(|i| format!("sid=\"{i}\",")).collect();
        let c = parse(&repeated);
        assert_eq!(c.items.len(), 1);
        assert!(c.str("sid").is_some());
    }
}
