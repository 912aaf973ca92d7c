//! Keeping a bug to what it hits. A panic that some input reaches (a viewer's request, a
//! packager's push, an origin's response) must cost that one connection or fetch, not the
//! thread that serves many: a dead worker takes its connections and listeners, a dead fetch
//! thread shrinks the pool and leaves its waiters hanging, a dead push thread leaks an
//! ingest slot, a dead admin thread takes /metrics with it. The panic's message still
//! reaches stderr through the default hook.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f`; None if it panicked. Whatever `f` was changing is dropped by the caller (the
/// connection closed, the fetch abandoned), so state it left half-done is not used again.
pub fn contain<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Debug builds only (the tests' binary; a release build has no such hook): panic when
/// `what` contains the value of the environment variable `var`, so tests can show what a
/// bug costs. `CORESTREAM_DEBUG_PANIC_ON` (a request target, in `respond`),
/// `CORESTREAM_DEBUG_PANIC_FETCH` (an origin fetch's path), `CORESTREAM_DEBUG_PANIC_PULLED`
/// (the bytes of an origin's body as they arrive), `CORESTREAM_DEBUG_PANIC_PUSH` (the bytes
/// of a pushed body as they arrive), `CORESTREAM_DEBUG_PANIC_ADMIN` (an admin
/// request's path), `CORESTREAM_DEBUG_PANIC_QOE` (a path being counted, with the worker's
/// QoE tracker locked).
#[cfg(debug_assertions)]
pub fn injected(var: &str, what: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let Some(v) = std::env::var_os(var) else {
        return;
    };
    let v = v.as_bytes();
    if !v.is_empty() && what.windows(v.len()).any(|w| w == v) {
        panic!("{var}: {}", String::from_utf8_lossy(what));
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn injected(_var: &str, _what: &[u8]) {}
