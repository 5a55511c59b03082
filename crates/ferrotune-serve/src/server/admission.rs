//! Admission control: a bounded count of sequences running or queued, so that a full server
//! answers 429 instead of growing its queue without limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts sequences running or queued; refuses past `capacity`.
#[derive(Debug)]
pub(super) struct Admission {
    in_flight: AtomicUsize,
    /// Most sequences running or queued at once (`MAX_CONCURRENT + MAX_QUEUE`).
    pub(super) capacity: usize,
}

/// `n` admitted sequences, released when dropped (the request ended or its client left).
#[derive(Debug)]
pub(super) struct Permit {
    admission: Arc<Admission>,
    n: usize,
}

impl Admission {
    /// Nothing admitted yet; at most `capacity` sequences at once.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Admits `n` sequences, or `None` when that would pass the capacity.
    pub(super) fn try_acquire(self: &Arc<Self>, n: usize) -> Option<Permit> {
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                (cur + n <= self.capacity).then_some(cur + n)
            })
            .ok()
            .map(|_| Permit {
                admission: Arc::clone(self),
                n,
            })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(self.n, Ordering::SeqCst);
    }
}
