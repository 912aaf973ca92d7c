//! Request and response-head buffers kept for reuse per worker, so a busy connection does not
//! cost a malloc/free pair per request, and an idle one holds none. Sized to recent demand:
//! buffers that no request needed for a whole trim interval are freed, so a surge of
//! in-flight requests does not leave its peak behind for good.

use super::fsys;

/// Bytes asked of recv() at a time; a request head is usually well under this.
pub const READ_CHUNK: usize = 4096;
/// Buffers kept for reuse; beyond this they are freed.
const POOL_MAX: usize = 1024;
/// Buffers grown past this (a large head) are freed instead of pooled.
const KEEP_MAX_CAPACITY: usize = 4 * READ_CHUNK;
/// Bytes freed by one trim above which the allocator is asked to hand free pages back to the
/// kernel (after a surge, so RSS follows the load down).
const RETURN_TO_OS: usize = 1 << 20;

#[derive(Default)]
pub struct Pool {
    bufs: Vec<Vec<u8>>,
    /// Fewest buffers in the pool since the last trim: that many went unused.
    low: usize,
}

impl Pool {
    pub fn take(&mut self) -> Vec<u8> {
        let v = self
            .bufs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
        self.low = self.low.min(self.bufs.len());
        v
    }

    /// Take back a buffer (a zero-capacity one is simply dropped).
    pub fn give(&mut self, mut v: Vec<u8>) {
        if v.capacity() == 0 {
            return;
        }
        if self.bufs.len() < POOL_MAX && v.capacity() <= KEEP_MAX_CAPACITY {
            v.clear();
            self.bufs.push(v);
        }
    }

    /// Give `v` back if it holds nothing, leaving an unallocated Vec in its place.
    pub fn give_if_empty(&mut self, v: &mut Vec<u8>) {
        if v.is_empty() {
            self.give(std::mem::take(v));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Free the buffers that sat unused since the last trim (the bottom of the stack: the
    /// top is what take() hands out), and return memory to the kernel after a surge.
    pub fn trim(&mut self) {
        let idle = self.low.min(self.bufs.len());
        let freed: usize = self.bufs.drain(..idle).map(|b| b.capacity()).sum();
        if self.bufs.capacity() > 2 * self.bufs.len().max(64) {
            self.bufs.shrink_to_fit();
        }
        self.low = self.bufs.len();
        if freed >= RETURN_TO_OS {
            fsys::return_free_memory();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_then_trims_what_went_unused() {
        let mut p = Pool::default();
        let bufs: Vec<Vec<u8>> = (0..10).map(|_| p.take()).collect();
        for b in bufs {
            p.give(b);
        }
        assert_eq!(p.bufs.len(), 10);
        p.trim(); // low was 0 before the gives: nothing counted unused yet
        assert_eq!(p.bufs.len(), 10);
        let a = p.take();
        p.give(a);
        p.trim(); // 9 sat unused the whole interval
        assert_eq!(p.bufs.len(), 1);
        p.give(Vec::with_capacity(KEEP_MAX_CAPACITY + 1));
        p.give(Vec::new());
        assert_eq!(p.bufs.len(), 1, "oversized and empty buffers are not kept");
    }
}
