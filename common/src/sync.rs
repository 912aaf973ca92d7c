//! Locks that outlive a panic. The server contains a panic to the one connection, fetch or
//! push that hit it (its `fault` module) and the thread goes on serving; a lock that thread
//! held is then poisoned, and `lock()`'s error would turn every later use of the map behind
//! it into a failure for good (every miss a 500, every follower ignored, /metrics empty).
//! What these locks guard is kept consistent between statements (maps, counters, caches
//! whose worst inconsistency is a miscounted byte total), so the data is taken as it is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `m.lock()`, also after a panic while it was held.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `l.read()`, also after a panic while it was written.
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// `l.write()`, also after a panic while it was held.
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Places for at most `max` things at once (connections a small blocking server answers,
/// each on its own thread): `take` gives a `Slot`, which gives its place back when dropped,
/// however its holder ends.
pub struct Slots {
    used: Arc<AtomicUsize>,
    max: usize,
}

pub struct Slot(Arc<AtomicUsize>);

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots {
            used: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place, or None when all `max` are taken.
    pub fn take(&self) -> Option<Slot> {
        if self.used.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.used.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(Arc::clone(&self.used)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_however_their_holder_ends() {
        let slots = Slots::new(2);
        let a = slots.take();
        let b = slots.take();
        assert!(a.is_some() && b.is_some());
        assert!(slots.take().is_none(), "a third while two are held");
        drop(a);
        let c = slots.take();
        assert!(c.is_some(), "a place given back is taken again");
        let held = c;
        let r = std::thread::spawn(move || {
            let _held = held;
            panic!("the holder's thread ends in a panic");
        })
        .join();
        assert!(r.is_err());
        assert!(slots.take().is_some(), "given back by the unwinding");
    }

    fn poison<T: Send + Sync + 'static>(hold: impl FnOnce(&T) + Send + 'static, v: Arc<T>) {
        let held = std::thread::spawn(move || hold(&v)).join();
        assert!(held.is_err(), "the holder was meant to panic");
    }

    #[test]
    fn a_poisoned_mutex_still_gives_its_data() {
        let m = Arc::new(Mutex::new(vec![1]));
        poison(
            |m: &Mutex<Vec<i32>>| {
                let mut g = m.lock().unwrap_or_else(PoisonError::into_inner);
                g.push(2);
                panic!("while held");
            },
            m.clone(),
        );
        assert!(m.is_poisoned() && m.lock().is_err());
        lock(&m).push(3);
        assert_eq!(*lock(&m), vec![1, 2, 3]);
    }

    #[test]
    fn a_poisoned_rwlock_still_reads_and_writes() {
        let l = Arc::new(RwLock::new(5));
        poison(
            |l: &RwLock<i32>| {
                let _g = l.write().unwrap_or_else(PoisonError::into_inner);
                panic!("while written");
            },
            l.clone(),
        );
        assert!(l.read().is_err());
        *write(&l) += 1;
        assert_eq!(*read(&l), 6);
    }
}
