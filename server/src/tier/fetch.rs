//! One fetch: ask the origins in rendezvous order, read the answer's head, and turn it into
//! what viewers get: a stored object streamed while it arrives (200), a refreshed copy
//! (304), a remembered 404, or a remembered failure (502: unreachable or broken, 504: too
//! slow). Then wake everyone waiting on the key.

use super::fresh::{self, Policy};
use super::origin::{Origin, Slot, Upstream};
use super::share::{Claim, Lead, Meta};
use super::{Entry, Job, Remembered, Tier, Validators};
use crate::http::body::{self, BodyError, Framing};
use crate::http::mime::Kind;
use crate::http::Status;
use crate::ingest::store::Upload;
use crate::live::growing::{Growing, State};
use crate::shared::Shared;
use bytes::Bytes;
use corestream_common::deadline::By;
use corestream_common::sync::lock;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest response head accepted from an origin.
const MAX_HEAD: usize = 64 * 1024;
/// Largest blocking playlist response held in memory.
const MAX_PLAYLIST: u64 = 4 << 20;
/// Extra time an origin may hold a blocking playlist request (LL-HLS: up to three target
/// durations, at most a few seconds each).
const BLOCKING_GRACE: Duration = Duration::from_secs(30);
/// Freshness when the origin gives none (RFC 9111 4.2.2 leaves it to us): short for
/// playlists (live ones change every segment), a minute for the rest.
const PLAYLIST_DEFAULT: Duration = Duration::from_secs(1);
const OBJECT_DEFAULT: Duration = Duration::from_secs(60);

/// Why an attempt on one origin failed.
enum Failure {
    /// Try the next origin (connect error, 5xx, broken answer); the status if none is left.
    Next(Status, String),
    /// Stop here with this status.
    Final(Status),
    /// The body failed mid-way: viewers on it were closed; nothing is remembered, so the
    /// next request fetches again.
    Broken,
    /// A 304 for a copy evicted while it was being revalidated: ask again for all of it.
    Evicted,
}

/// Start the fetcher threads.
pub fn start(tier: Arc<Tier>, shared: Arc<Shared>) -> io::Result<()> {
    let threads = tier.opts.max_connections * tier.origins().len().max(1);
    if let Some(sh) = tier.share.clone() {
        let (t, s) = (tier.clone(), shared.clone());
        std::thread::Builder::new()
            .name("corestream-share".into())
            .spawn(move || sh.run(t, s))?;
    }
    for i in 0..threads.max(2) {
        let (t, s) = (tier.clone(), shared.clone());
        std::thread::Builder::new()
            .name(format!("corestream-fetch{i}"))
            .spawn(move || {
                while let Some(job) = t.next_job() {
                    let (key, path) = (job.key.clone(), job.path.clone());
                    let ttl = t.negative_ttl(&job);
                    if crate::fault::contain(|| run(&t, &s, job)).is_none() {
                        abandon(&t, &s, (&key, &path), ttl);
                    }
                }
            })?;
    }
    Ok(())
}

/// After a fetch panicked (`crate::fault`): its viewers following the bytes are closed, the
/// requests held for it get 502 (remembered like any failure, for the negative TTL), and
/// the key is free for the next fetch. The thread goes on taking jobs.
fn abandon(t: &Tier, shared: &Shared, (key, path): (&[u8], &[u8]), ttl: Duration) {
    // Only an object the tier is still pulling (not a push to the same path).
    let pulling = shared
        .growing
        .get(path)
        .filter(|g| g.upstream && g.available().1 == State::Open);
    let answer = match pulling {
        Some(g) => {
            shared.growing.end(path, &g, State::Aborted);
            Remembered::Broken
        }
        None => Remembered::Status(Status::BadGateway),
    };
    t.remember(key, answer, ttl);
    t.done(key);
    shared.inboxes.changed(&[key.to_vec()]);
}

fn run(t: &Tier, shared: &Shared, mut job: Job) {
    crate::fault::injected("CORESTREAM_DEBUG_PANIC_FETCH", &job.path);
    // Other processes on this box with the same --cache-dir: one of us fetches.
    let mut lead = None;
    if let (Some(sh), None) = (&t.share, &job.query) {
        match sh.claim(t, shared, &job) {
            Claim::Lead(l) => lead = Some(l),
            Claim::Follow => return,
            Claim::Adopted => {
                t.done(&job.key);
                shared
                    .inboxes
                    .changed(std::slice::from_ref(&job.key.to_vec()));
                return;
            }
            Claim::Alone => {}
        }
    }
    let mut last = (Status::BadGateway, String::from("no origin"));
    let mut outcome = None;
    for i in super::origin::order(t.origins(), &job.path) {
        let origin = &t.origins()[i];
        let mut result = attempt(t, shared, origin, &job, &mut lead);
        if matches!(result, Err(Failure::Evicted)) {
            // Its viewers are waiting now: the whole object at once, not a 503 remembered
            // for the negative TTL.
            job.revalidate = None;
            result = attempt(t, shared, origin, &job, &mut lead);
        }
        match result {
            Ok(()) => {
                outcome = Some(Ok(()));
                break;
            }
            Err(Failure::Next(status, why)) => last = (status, why),
            Err(f) => {
                outcome = Some(Err(f));
                break;
            }
        }
    }
    match outcome {
        Some(Ok(())) => {}
        Some(Err(Failure::Broken)) => {
            t.remember(&job.key, Remembered::Broken, t.negative_ttl(&job))
        }
        Some(Err(Failure::Evicted)) => t.remember(
            &job.key,
            Remembered::Status(Status::ServiceUnavailable),
            t.negative_ttl(&job),
        ),
        Some(Err(Failure::Final(status))) => {
            t.remember(&job.key, Remembered::Status(status), t.negative_ttl(&job))
        }
        Some(Err(Failure::Next(..))) | None => {
            say!(
                "corestream: origin fetch of /{} failed: {}",
                String::from_utf8_lossy(&job.path),
                last.1
            );
            t.remember(&job.key, Remembered::Status(last.0), t.negative_ttl(&job));
        }
    }
    if let (Some(sh), Some(l)) = (&t.share, lead) {
        // Not stored by this fetch: the other processes stop following it.
        sh.finish(l, None);
    }
    t.done(&job.key);
    shared
        .inboxes
        .changed(std::slice::from_ref(&job.key.to_vec()));
}

/// The request target: the prefix, the path percent-encoded, the blocking directives.
fn target(origin: &Origin, job: &Job) -> Vec<u8> {
    let mut t = origin.prefix.as_bytes().to_vec();
    t.push(b'/');
    for &b in &job.path {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            t.push(b);
        } else {
            t.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    if let Some(q) = &job.query {
        t.push(b'?');
        t.extend_from_slice(q);
    }
    t
}

/// A response head from an origin.
pub(crate) struct Head {
    status: u16,
    keep_alive: bool,
    pub(crate) framing: Framing,
    fields: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn policy(&self) -> Policy {
        fresh::policy(self.fields.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
    }

    /// Its freshness fields as viewers get them: a cache sends the stored response's own
    /// fields with `Age` (RFC 9111 4), so a player, a CDN or another edge in front keeps an
    /// object as long as the origin said, not as long as this edge's `--cache-*` would.
    /// Fields it sent that cannot be passed on (too long, control characters) make it
    /// `no-store`: what they said is unknown, and this edge's own policy could keep for two
    /// weeks what the origin marked private.
    fn passed_on(&self) -> Option<Bytes> {
        let freshness: Vec<(&'static str, &[u8])> = self
            .fields
            .iter()
            .filter_map(|(n, v)| {
                if n.eq_ignore_ascii_case("cache-control") {
                    Some(("Cache-Control", v.as_slice()))
                } else if n.eq_ignore_ascii_case("expires") {
                    Some(("Expires", v.as_slice()))
                } else {
                    None
                }
            })
            .collect();
        if freshness.iter().all(|(_, v)| v.trim_ascii().is_empty()) {
            return None;
        }
        encode_fields(freshness)
            .or_else(|| Some(Bytes::from_static(b"Cache-Control: no-store\r\n")))
    }

    /// Its ETag and Last-Modified.
    fn validators(&self) -> Validators {
        (
            self.field("etag").map(<[u8]>::to_vec),
            self.field("last-modified").map(<[u8]>::to_vec),
        )
    }
}

/// Longest block of fields passed on from an origin's answer.
pub(super) const MAX_PASSED: usize = 4096;

/// `Name: value` lines for viewers from an origin's values (`Fields::upstream`). None when
/// there are none, when they are too long, or when one holds a control character that
/// could end the head early.
pub(crate) fn encode_fields<'a>(
    fields: impl IntoIterator<Item = (&'static str, &'a [u8])>,
) -> Option<Bytes> {
    let mut out = Vec::new();
    for (name, value) in fields {
        let value = value.trim_ascii();
        if value.is_empty() {
            continue;
        }
        if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return None;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    (!out.is_empty() && out.len() <= MAX_PASSED).then(|| out.into())
}

/// A stored block of passed-on fields updated by a 304's (RFC 9111 4.3.4): each field the 304
/// carries replaces the stored ones of its name, the others stay.
pub(crate) fn update_fields(stored: &[u8], new: &[u8]) -> Bytes {
    let name = |line: &[u8]| line.split(|&b| b == b':').next().unwrap_or(line).to_vec();
    let replaced: Vec<Vec<u8>> = new.split_inclusive(|&b| b == b'\n').map(name).collect();
    let mut out: Vec<u8> = stored
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| !replaced.contains(&name(line)))
        .flatten()
        .copied()
        .collect();
    out.extend_from_slice(new);
    out.into()
}

/// Interim (1xx) responses skipped before a final one; an origin that sends more would hold
/// the fetch thread for as long as it kept sending them.
const MAX_INTERIM: usize = 16;

/// Read and parse a response head; the bytes after it stay in `buf`. Interim (1xx)
/// responses, such as 103 Early Hints, are skipped (at most `MAX_INTERIM`). A head whose
/// framing cannot be trusted (RFC 9112 6.3: an invalid or conflicting Content-Length, a
/// transfer coding other than chunked, which we did not ask for) is an error: its body must
/// not be stored.
pub(crate) fn read_head(s: &mut impl Read, buf: &mut Vec<u8>, head_only: bool) -> io::Result<Head> {
    let mut chunk = [0u8; 8192];
    let bad = |why: &str| io::Error::new(ErrorKind::InvalidData, why.to_string());
    let mut interim = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 100];
        let mut r = httparse::Response::new(&mut fields);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = r.code.unwrap_or(0);
                let minor = r.version.unwrap_or(0);
                let fields: Vec<(String, Vec<u8>)> = r
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), crate::http::trim(h.value).to_vec()))
                    .collect();
                buf.drain(..n);
                if (100..200).contains(&status) && status != 101 {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(bad("interim (1xx) responses without end"));
                    }
                    continue;
                }
                let values = |name: &str| -> Vec<&[u8]> {
                    fields
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                        .flat_map(|(_, v)| v.split(|&b| b == b','))
                        .map(crate::http::trim)
                        .filter(|t| !t.is_empty())
                        .collect()
                };
                let codings = values("transfer-encoding");
                let chunked = match codings.as_slice() {
                    [] => false,
                    [c] if c.eq_ignore_ascii_case(b"chunked") => true,
                    _ => return Err(bad("a transfer coding other than chunked")),
                };
                // Several Content-Length values are acceptable only when they agree.
                let mut length = None;
                for v in values("content-length") {
                    let n = std::str::from_utf8(v)
                        .ok()
                        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or_else(|| bad("an invalid Content-Length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(bad("conflicting Content-Length values"));
                    }
                    length = Some(n);
                }
                let framing = if head_only || status == 304 || status == 204 || status < 200 {
                    Framing::Length(0)
                } else if chunked {
                    Framing::Chunked
                } else if let Some(n) = length {
                    Framing::Length(n)
                } else {
                    Framing::UntilClose
                };
                let has_close = values("connection")
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(b"close"));
                let keep_alive =
                    minor == 1 && !has_close && !matches!(framing, Framing::UntilClose);
                return Ok(Head {
                    status,
                    keep_alive,
                    framing,
                    fields,
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => return Err(bad("malformed response head")),
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
}

fn count(t: &Tier, origin: &Origin, status: u16) {
    *lock(&t.stats.upstream)
        .entry((origin.authority.clone(), status))
        .or_default() += 1;
}

/// Send the request on a kept-alive connection if one is idle (once more on a fresh one if
/// that connection turns out dead), and read the head of the answer.
fn exchange(
    t: &Tier,
    origin: &Origin,
    slot: &mut Slot<'_>,
    job: &Job,
    buf: &mut Vec<u8>,
) -> Result<(Upstream, Head), Failure> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(&target(origin, job));
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(origin.authority.as_bytes());
    req.extend_from_slice(
        b"\r\nUser-Agent: corestream\r\nVia: 1.1 corestream\r\nAccept-Encoding: identity\r\n",
    );
    if let Some((etag, lm)) = &job.revalidate {
        if let Some(e) = etag {
            req.extend_from_slice(b"If-None-Match: ");
            req.extend_from_slice(e);
            req.extend_from_slice(b"\r\n");
        }
        if let Some(l) = lm {
            req.extend_from_slice(b"If-Modified-Since: ");
            req.extend_from_slice(l);
            req.extend_from_slice(b"\r\n");
        }
    }
    req.extend_from_slice(b"\r\n");
    let wait = t.opts.timeout
        + if job.query.is_some() {
            BLOCKING_GRACE
        } else {
            Duration::ZERO
        };
    let mut pooled = slot.pooled.take();
    loop {
        let reused = pooled.is_some();
        let mut s = match pooled.take() {
            Some(s) => s,
            None => origin
                .connect(t.opts.timeout, t.tls.as_ref())
                .map_err(|e| {
                    count(t, origin, 0);
                    let status = if timed_out(&e) {
                        Status::GatewayTimeout
                    } else {
                        Status::BadGateway
                    };
                    Failure::Next(status, format!("connect to {}: {e}", origin.authority))
                })?,
        };
        let _ = s.tcp().set_write_timeout(Some(t.opts.timeout));
        buf.clear();
        let sent = Instant::now();
        let result = s.write_all(&req).and_then(|()| {
            // --origin-timeout for the whole head, not for each byte of it: an origin
            // sending it a byte at a time held the fetch, and its viewers, for as long as
            // it liked.
            let mut by = By {
                s: &mut s,
                deadline: Instant::now() + wait,
            };
            read_head(&mut by, buf, false)
        });
        match result {
            Ok(head) => {
                // What follows the head is a body: its reads wait up to the stall timeout each.
                let _ = s.tcp().set_read_timeout(Some(t.opts.stall_timeout));
                lock(&t.stats.latency)
                    .observe(&super::LATENCY_BOUNDS, sent.elapsed().as_secs_f64());
                count(t, origin, head.status);
                return Ok((s, head));
            }
            // A kept-alive connection the origin had closed: once more on a new one.
            Err(e) if reused && buf.is_empty() && e.kind() != ErrorKind::InvalidData => continue,
            Err(e) => {
                count(t, origin, 0);
                let status = if timed_out(&e) {
                    Status::GatewayTimeout
                } else {
                    Status::BadGateway
                };
                return Err(Failure::Next(
                    status,
                    format!("{} answered badly or not at all: {e}", origin.authority),
                ));
            }
        }
    }
}

/// Read and drop a body (a 404's text, an error page), keeping the connection if it is small.
fn drain(s: &mut Upstream, buf: &mut Vec<u8>, head: &Head) -> bool {
    if matches!(head.framing, Framing::Length(n) if n > 64 * 1024) {
        return false;
    }
    let mut seen = 0u64;
    body::read(s, buf, head.framing, |d| {
        seen += d.len() as u64;
        if seen > 64 * 1024 {
            Err(())
        } else {
            Ok(())
        }
    })
    .is_ok()
        && head.keep_alive
}

fn attempt(
    t: &Tier,
    shared: &Shared,
    origin: &Origin,
    job: &Job,
    lead: &mut Option<Lead>,
) -> Result<(), Failure> {
    let Some(mut slot) = origin.slot(t.opts.max_connections, t.opts.timeout) else {
        count(t, origin, 0);
        return Err(Failure::Next(
            Status::GatewayTimeout,
            format!(
                "all {} connections to {} stayed busy for {:?} (--origin-max-connections)",
                t.opts.max_connections, origin.authority, t.opts.timeout
            ),
        ));
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    let (mut s, head) = exchange(t, origin, &mut slot, job, &mut buf)?;
    let reusable = match head.status {
        200 if job.query.is_some() => blocking_playlist(t, &mut s, &mut buf, &head, job)?,
        200 => store(t, shared, &mut s, &mut buf, &head, job, lead)?,
        304 if job.revalidate.is_some() => {
            if !t.refresh(
                &job.path,
                &head.policy(),
                head.validators(),
                head.passed_on(),
            ) {
                if drain(&mut s, &mut buf, &head) {
                    slot.keep(s);
                }
                return Err(Failure::Evicted);
            }
            head.keep_alive
        }
        404 | 410 => {
            let ok = drain(&mut s, &mut buf, &head);
            t.forget(&job.path);
            t.remember(
                &job.key,
                Remembered::Status(Status::NotFound),
                t.negative_ttl(job),
            );
            if ok {
                slot.keep(s);
            }
            return Ok(());
        }
        code @ (301 | 302 | 303 | 307 | 308) => {
            let location =
                super::origin::edge_location(&t.opts.origins, origin, head.field("location"))
                    .and_then(|l| encode_fields([("Location", &l[..])]));
            let ok = drain(&mut s, &mut buf, &head);
            if ok {
                slot.keep(s);
            }
            let (Some(status), Some(location)) = (Status::redirect(code), location) else {
                say!(
                    "corestream: origin {} answered {code} for /{} without a usable Location",
                    origin.authority,
                    String::from_utf8_lossy(&job.path)
                );
                return Err(Failure::Final(Status::BadGateway));
            };
            // Passed on, as nginx, Varnish and CDNs do: a playlist's relative URIs resolve
            // against the URL the player was sent to, which following the redirect here and
            // serving the target's body under the old path would break. Kept as long as the
            // origin says, a permanent one heuristically like an object, a temporary one only
            // for the requests that waited for this fetch.
            let policy = head.policy();
            let ttl = match policy.lifetime {
                _ if policy.no_store => Duration::ZERO,
                Some(l) => l.saturating_sub(policy.age),
                None if status.is_permanent_redirect() => default_lifetime(job.kind),
                None => Duration::ZERO,
            };
            t.forget(&job.path);
            let (fields, passed) = match head.passed_on() {
                Some(p) => ([&location[..], &p[..]].concat().into(), true),
                None => (location, false),
            };
            t.remember(&job.key, Remembered::Redirect(status, fields, passed), ttl);
            return Ok(());
        }
        500..=599 => {
            return Err(Failure::Next(
                Status::BadGateway,
                format!("{} answered {}", origin.authority, head.status),
            ))
        }
        other => {
            if drain(&mut s, &mut buf, &head) {
                slot.keep(s);
            }
            say!(
                "corestream: origin {} answered {other} for /{}",
                origin.authority,
                String::from_utf8_lossy(&job.path)
            );
            return Err(Failure::Final(Status::BadGateway));
        }
    };
    if reusable && buf.is_empty() {
        slot.keep(s);
    }
    Ok(())
}

fn default_lifetime(kind: Kind) -> Duration {
    if kind == Kind::Playlist {
        PLAYLIST_DEFAULT
    } else {
        OBJECT_DEFAULT
    }
}

/// The answer to a blocking playlist request: held in memory for the identical requests
/// that follow (LL-HLS server configuration profile: 6 target durations).
fn blocking_playlist(
    t: &Tier,
    s: &mut Upstream,
    buf: &mut Vec<u8>,
    head: &Head,
    job: &Job,
) -> Result<bool, Failure> {
    let _ = s.tcp().set_read_timeout(Some(t.opts.stall_timeout));
    let mut body = Vec::new();
    body::read(s, buf, head.framing, |d| {
        if body.len() as u64 + d.len() as u64 > MAX_PLAYLIST {
            return Err(());
        }
        body.extend_from_slice(d);
        Ok(())
    })
    .map_err(|_| Failure::Final(Status::BadGateway))?;
    let info = std::str::from_utf8(&body)
        .ok()
        .map(crate::live::playlist::scan);
    if let Some(i) = &info {
        t.learn(&job.path, i);
    }
    let target = info
        .map(|i| i.target_duration)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    let ttl = Duration::from_secs_f64((6.0 * target).min(60.0));
    t.remember(
        &job.key,
        Remembered::Playlist(body.into(), head.passed_on()),
        ttl,
    );
    Ok(head.keep_alive)
}

/// A complete object that is not stored (`no-store`, `private`, over --cache-max-bytes):
/// the viewers held for its fetch still get it. Objects other than playlists were followed
/// as they arrived; a playlist is answered from its remembered body once they are woken (a
/// zero TTL: no new request gets it), or each would fetch again.
pub(super) fn hand_to_waiters(
    t: &Tier,
    key: &[u8],
    (kind, passed): (Kind, Option<Bytes>),
    file: RawFd,
    size: u64,
) {
    if kind != Kind::Playlist || size > MAX_PLAYLIST {
        return;
    }
    if let Ok(body) = crate::net::fsys::read_exact_size(file, size) {
        t.remember(
            key,
            Remembered::Playlist(body.into(), passed),
            Duration::ZERO,
        );
    }
}

/// A 200: write the object into the cache directory, streaming it to the viewers waiting
/// for it as it arrives, and record it once complete.
fn store(
    t: &Tier,
    shared: &Shared,
    s: &mut Upstream,
    buf: &mut Vec<u8>,
    head: &Head,
    job: &Job,
    lead: &mut Option<Lead>,
) -> Result<bool, Failure> {
    let policy = head.policy();
    let passed = head.passed_on();
    // Leading for the box: the bytes go into the shared file the other processes follow.
    let lead = lead.take();
    if let Some(l) = &lead {
        if let Some(p) = &passed {
            let _ = crate::net::fsys::set_xattr(l.file.as_raw_fd(), super::share::PASSED_XATTR, p);
        }
        let age = policy.age.as_secs();
        if age > 0 {
            let _ = crate::net::fsys::set_xattr(
                l.file.as_raw_fd(),
                super::share::AGE_XATTR,
                age.to_string().as_bytes(),
            );
        }
    }
    let opened = match lead.as_ref().map(|l| l.file.try_clone()) {
        Some(Ok(f)) => Upload::with_file(t.cache_fd.as_raw_fd(), &job.path, f, 0),
        _ => Upload::begin(t.cache_fd.as_raw_fd(), &job.path),
    };
    let finish = |meta| {
        if let (Some(sh), Some(l)) = (&t.share, lead) {
            sh.finish(l, meta);
        }
    };
    let mut up = opened.map_err(|e| {
        say!(
            "corestream: cannot store /{} in --cache-dir: {e:?}",
            String::from_utf8_lossy(&job.path)
        );
        Failure::Final(Status::InternalError)
    })?;
    let declared = match head.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let growing = match up.file.try_clone() {
        Ok(f) => {
            let g = Arc::new(
                Growing::new(f, job.content_type, job.kind, declared, shared.cfg.workers)
                    .pulled(passed.clone(), policy.age),
            );
            shared.growing.begin(&job.path, g.clone());
            Some(g)
        }
        Err(_) => None,
    };
    let _ = s.tcp().set_read_timeout(Some(t.opts.stall_timeout));
    let read = body::read(s, buf, head.framing, |d| {
        crate::fault::injected("CORESTREAM_DEBUG_PANIC_PULLED", d);
        up.write(d)?;
        // The last bytes of an announced length are published once the object is stored
        // (below): a viewer that has them all may ask again at once, and must then find it
        // stored (a hit), not a fetch still ending.
        if let Some(g) = growing.as_ref().filter(|_| declared != Some(up.written)) {
            shared.growing.wrote(g, up.written);
        }
        Ok::<(), crate::ingest::store::StoreError>(())
    });
    let end = |state| {
        if let Some(g) = &growing {
            shared.growing.end(&job.path, g, state);
        }
    };
    if let Err(e) = read {
        end(State::Aborted);
        finish(None);
        let why = match e {
            BodyError::Timeout => "stalled".to_string(),
            BodyError::Sink(e) => format!("cannot be stored: {e:?}"),
            other => format!("broke off: {other:?}"),
        };
        say!(
            "corestream: origin body of /{} {why}; its viewers were closed",
            String::from_utf8_lossy(&job.path)
        );
        return Err(Failure::Broken);
    }
    let size = up.written;
    let mut lifetime = policy.lifetime.unwrap_or(default_lifetime(job.kind));
    if job.path.ends_with(b".m3u8") && size <= 1 << 20 {
        if let Ok(text) = crate::net::fsys::read_exact_size(up.file.as_raw_fd(), size) {
            if let Ok(info) = std::str::from_utf8(&text).map(crate::live::playlist::scan) {
                t.learn(&job.path, &info);
                // LL-HLS server configuration profile: a playlist is good for half a
                // target duration unless the origin says otherwise.
                if policy.lifetime.is_none() && info.target_duration > 0.0 {
                    lifetime = Duration::from_secs_f64(info.target_duration / 2.0);
                }
            }
        }
    }
    let (etag, last_modified) = head.validators();
    let storable = !policy.no_store && size <= t.opts.max_bytes;
    if !storable {
        hand_to_waiters(
            t,
            &job.key,
            (job.kind, passed.clone()),
            up.file.as_raw_fd(),
            size,
        );
    }
    if storable {
        let entry = Entry {
            size,
            stored: Instant::now(),
            age: policy.age,
            lifetime,
            etag: etag.clone(),
            last_modified: last_modified.clone(),
            passed: passed.clone(),
        };
        match up.commit() {
            Ok(_) => t.store(&job.path, entry),
            Err(e) => say!(
                "corestream: cannot store /{} in --cache-dir: {e:?}",
                String::from_utf8_lossy(&job.path)
            ),
        }
    }
    finish(Some(Meta {
        lifetime,
        age: policy.age,
        etag,
        last_modified,
        passed,
        stored: storable,
    }));
    if let Some(g) = &growing {
        shared.growing.complete(&job.path, g, size);
    }
    Ok(head.keep_alive)
}
