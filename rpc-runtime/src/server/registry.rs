//! The connections a server is serving (H6): the global and per-peer caps, and eviction of the
//! connection idle longest when the global cap is reached.
//!
//! The lock is taken when a connection opens or closes, never per call: a connection publishes
//! its idleness through an atomic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rpc_transport::Peer;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What makes two connections "the same peer" for the per-peer cap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PeerKey {
    Ip(IpAddr),
    Uid(u32),
}

impl PeerKey {
    fn of(peer: &Peer) -> Option<PeerKey> {
        match peer {
            Peer::Tcp(addr) => Some(PeerKey::Ip(addr.ip())),
            Peer::Unix { uid: Some(uid), .. } => Some(PeerKey::Uid(*uid)),
            _ => None,
        }
    }
}

/// A connection's idleness, as the registry sees it: [`BUSY`] while calls run, otherwise the
/// time (in milliseconds since the registry started) of its last request or finished call.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    last: AtomicU64,
}

/// [`Activity`]'s value while the connection has calls running: never evicted.
const BUSY: u64 = u64::MAX;

impl Activity {
    /// Records that no call is running, the last activity (a request, a call finishing) having
    /// been at `at`.
    pub(crate) fn idle_since(&self, at: Instant) {
        let since = at.saturating_duration_since(self.epoch);
        // Not `as_millis`: its 128-bit division was most of this call's cost, twice per call.
        let ms = since.as_secs().saturating_mul(1000).saturating_add(u64::from(since.subsec_millis()));
        self.last.store(ms.min(BUSY - 1), Ordering::Relaxed);
    }

    /// [`Activity::idle_since`] now.
    pub(crate) fn idle_since_now(&self) {
        self.idle_since(Instant::now());
    }

    /// Records that calls are running.
    pub(crate) fn busy(&self) {
        self.last.store(BUSY, Ordering::Relaxed);
    }
}

struct Entry {
    key: Option<PeerKey>,
    activity: Arc<Activity>,
    evict: CancellationToken,
}

#[derive(Default)]
struct Inner {
    next: u64,
    conns: HashMap<u64, Entry>,
    per_peer: HashMap<PeerKey, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The global cap is reached and no connection is idle.
    Full,
    /// The peer already has its share.
    PeerCap,
}

/// The server's live connections.
pub(crate) struct Registry {
    max: usize,
    max_per_peer: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
    count: AtomicUsize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("connections", &self.len()).finish_non_exhaustive()
    }
}

/// A connection's place in the registry; leaving it (drop) frees the place.
pub(crate) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    /// This connection's idleness, published for eviction.
    pub(crate) activity: Arc<Activity>,
    /// Cancelled when the registry evicts this connection to make room.
    pub(crate) evicted: CancellationToken,
}

impl Registry {
    pub(crate) fn new(max: usize, max_per_peer: usize) -> Arc<Self> {
        let epoch = Instant::now();
        Arc::new(Registry {
            max,
            max_per_peer,
            epoch,
            inner: Mutex::new(Inner::default()),
            count: AtomicUsize::new(0),
        })
    }

    /// Connections being served now.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Admits a connection from `peer`: within the per-peer cap, and within the global cap,
    /// evicting the connection idle longest if the cap is reached. The evicted connection's
    /// token is cancelled; it closes itself with a goaway.
    pub(crate) fn admit(self: &Arc<Self>, peer: &Peer) -> Result<Slot, Refused> {
        let key = PeerKey::of(peer);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = &key {
            if inner.per_peer.get(k).copied().unwrap_or(0) >= self.max_per_peer {
                return Err(Refused::PeerCap);
            }
        }
        if inner.conns.len() >= self.max {
            let idlest = inner
                .conns
                .iter()
                .map(|(id, e)| (e.activity.last.load(Ordering::Relaxed), *id))
                .filter(|(last, _)| *last != BUSY)
                .min();
            let Some((_, id)) = idlest else { return Err(Refused::Full) };
            let evicted = Self::remove(&mut inner, id).expect("listed");
            evicted.evict.cancel();
        }
        let id = inner.next;
        inner.next += 1;
        if let Some(k) = &key {
            *inner.per_peer.entry(k.clone()).or_default() += 1;
        }
        let activity = Arc::new(Activity { epoch: self.epoch, last: AtomicU64::new(0) });
        activity.idle_since_now();
        let evict = CancellationToken::new();
        inner.conns.insert(id, Entry { key, activity: Arc::clone(&activity), evict: evict.clone() });
        self.count.store(inner.conns.len(), Ordering::Release);
        Ok(Slot { registry: Arc::clone(self), id, activity, evicted: evict })
    }

    fn remove(inner: &mut Inner, id: u64) -> Option<Entry> {
        let entry = inner.conns.remove(&id)?;
        if let Some(k) = &entry.key {
            if let Some(n) = inner.per_peer.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    inner.per_peer.remove(k);
                }
            }
        }
        Some(entry)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.registry.inner.lock().unwrap_or_else(|e| e.into_inner());
        // An evicted connection was removed already.
        Registry::remove(&mut inner, self.id);
        self.registry.count.store(inner.conns.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(ip: [u8; 4], port: u16) -> Peer {
        Peer::Tcp((ip, port).into())
    }

    #[tokio::test(start_paused = true)]
    async fn caps_per_peer_and_evicts_the_idlest_at_the_global_cap() {
        let registry = Registry::new(3, 2);
        let a = registry.admit(&tcp([10, 0, 0, 1], 1)).expect("a");
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let b = registry.admit(&tcp([10, 0, 0, 1], 2)).expect("b");
        assert_eq!(registry.admit(&tcp([10, 0, 0, 1], 3)).err(), Some(Refused::PeerCap));
        let c = registry.admit(&tcp([10, 0, 0, 2], 1)).expect("c");
        a.activity.busy();
        // Full: b is idle longest (a is busy), so b goes.
        let d = registry.admit(&tcp([10, 0, 0, 3], 1)).expect("d");
        assert!(b.evicted.is_cancelled() && !a.evicted.is_cancelled() && !c.evicted.is_cancelled());
        assert_eq!(registry.len(), 3);
        drop(b);
        assert_eq!(registry.len(), 3, "an evicted slot was already freed");
        for slot in [&a, &c, &d] {
            slot.activity.busy();
        }
        assert_eq!(registry.admit(&Peer::Memory).err(), Some(Refused::Full), "nobody idle");
        drop((a, c, d));
        assert_eq!(registry.len(), 0);
        // b's peer may connect twice again.
        let _e = registry.admit(&tcp([10, 0, 0, 1], 4)).expect("e");
        let _f = registry.admit(&tcp([10, 0, 0, 1], 5)).expect("f");
    }
}
