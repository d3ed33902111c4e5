//! The connection budget of `cro serve`: at most `MAX_CONNECTIONS` open at once, at most
//! `MAX_PER_CLIENT` from one remote address. A new connection is never refused: when a
//! budget is full, the oldest connection in it is closed instead. Whoever holds
//! connections open (idle, drip-feeding a request, reading a response slowly) then only
//! shortens their own connections' lives, while a scrape, which is the newest connection
//! and done in milliseconds, is served.
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Enough for every client a host has (Prometheus, a browser, curl) many times over, and
/// for a burst of reconnecting idle clients to pass without closing anyone (a budget of
/// 512 closed a scrape once in a CI run: a burst of 500 reconnections made it one of the
/// oldest before it was read), and a bound on memory: each open connection costs a task
/// and buffers of at most 16 KiB. `run` lowers it when the open-file limit is lower.
pub const MAX_CONNECTIONS: usize = 4096;
/// One remote address may hold this many; loopback clients share an address (a stuck
/// browser tab and the scraper alike) and are bounded by `MAX_CONNECTIONS` only.
pub const MAX_PER_CLIENT: usize = 32;

/// Closes a connection the budget has chosen to end (its task's abort handle, or a test's
/// flag).
pub trait Closer: Send {
    fn close(&self);
}

impl Closer for tokio::task::AbortHandle {
    fn close(&self) {
        self.abort();
    }
}

#[derive(Default)]
struct Inner {
    /// At most this many open (0: MAX_CONNECTIONS).
    max: usize,
    next: u64,
    /// Open connections by age (ids only grow): the first is the oldest.
    open: BTreeMap<u64, (IpAddr, Box<dyn Closer>)>,
    per_client: HashMap<IpAddr, usize>,
}

/// The budget, shared by the accept loop and every connection's guard.
#[derive(Clone, Default)]
pub struct Budget(Arc<Mutex<Inner>>);

/// A connection's place in the budget; given back when dropped (the connection ended,
/// or its task was aborted).
pub struct Place {
    budget: Budget,
    id: u64,
}

impl Budget {
    /// A budget of at most `max` connections.
    pub fn new(max: usize) -> Budget {
        let b = Budget::default();
        b.0.lock().unwrap_or_else(|e| e.into_inner()).max = max;
        b
    }

    /// A place for a new connection from `ip`, closing the oldest connection that stands
    /// in its way; `closer` is how this one would be closed in turn. Returns the place and
    /// how many connections were closed for it.
    pub fn admit(&self, ip: IpAddr, closer: Box<dyn Closer>) -> (Place, usize) {
        let ip = ip.to_canonical();
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut closed = 0;
        if !ip.is_loopback() && b.per_client.get(&ip).copied().unwrap_or(0) >= MAX_PER_CLIENT {
            let oldest = b
                .open
                .iter()
                .find(|(_, (i, _))| *i == ip)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                b.forget(id);
                closed += 1;
            }
        }
        let max = if b.max == 0 { MAX_CONNECTIONS } else { b.max };
        while b.open.len() >= max {
            let Some(id) = b.open.keys().next().copied() else {
                break;
            };
            b.forget(id);
            closed += 1;
        }
        let id = b.next;
        b.next += 1;
        b.open.insert(id, (ip, closer));
        *b.per_client.entry(ip).or_default() += 1;
        drop(b);
        (
            Place {
                budget: self.clone(),
                id,
            },
            closed,
        )
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).open.len()
    }
}

impl Inner {
    /// Take connection `id` out of the budget; its closer, if it was still there.
    fn remove(&mut self, id: u64) -> Option<Box<dyn Closer>> {
        let (ip, closer) = self.open.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&ip);
            }
        }
        Some(closer)
    }

    /// Take connection `id` out of the budget and close it.
    fn forget(&mut self, id: u64) {
        if let Some(closer) = self.remove(id) {
            closer.close();
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // An ended connection is not closed again, only taken out.
        let mut b = self.budget.0.lock().unwrap_or_else(|e| e.into_inner());
        b.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flag(Arc<AtomicBool>);
    impl Closer for Flag {
        fn close(&self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    fn conn(b: &Budget, ip: &str) -> (Place, Arc<AtomicBool>) {
        let f = Arc::new(AtomicBool::new(false));
        let (p, _) = b.admit(ip.parse().unwrap(), Box::new(Flag(f.clone())));
        (p, f)
    }

    #[test]
    fn a_full_budget_closes_its_oldest_connection_never_the_new_one() {
        let b = Budget::default();
        let held: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| conn(&b, "127.0.0.1"))
            .collect();
        assert_eq!(b.open(), MAX_CONNECTIONS);
        let (_new, new_closed) = conn(&b, "127.0.0.1");
        assert!(held[0].1.load(Ordering::Relaxed), "the oldest is closed");
        assert!(!held[1].1.load(Ordering::Relaxed) && !new_closed.load(Ordering::Relaxed));
        assert_eq!(b.open(), MAX_CONNECTIONS);
        drop(held);
        assert_eq!(b.open(), 1, "places are given back on drop");
    }

    #[test]
    fn one_remote_client_only_displaces_its_own_connections() {
        let b = Budget::default();
        let other = conn(&b, "192.0.2.2");
        let a: Vec<_> = (0..MAX_PER_CLIENT).map(|_| conn(&b, "192.0.2.1")).collect();
        let _a_more = conn(&b, "192.0.2.1");
        assert!(a[0].1.load(Ordering::Relaxed), "a's own oldest is closed");
        assert!(
            !other.1.load(Ordering::Relaxed),
            "another client keeps its connection"
        );
        // a mapped IPv4 address is the same client
        let _mapped = conn(&b, "::ffff:192.0.2.1");
        assert!(a[1].1.load(Ordering::Relaxed));
        // loopback clients are not capped apart
        let many: Vec<_> = (0..100).map(|_| conn(&b, "::ffff:127.0.0.1")).collect();
        assert!(many.iter().all(|(_, f)| !f.load(Ordering::Relaxed)));
    }
}
