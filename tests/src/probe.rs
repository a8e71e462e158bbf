//! The `Probe` service: one method per behaviour the reliability cases need, and counters that
//! let a test see what the server did (how many handlers run, finished, or were dropped).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::service;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};

/// A recursive type, for the deep-nesting case (A5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Tree {
    /// A leaf.
    Leaf(u8),
    /// One more level.
    Node(Box<Tree>),
    /// Children.
    Branch(Vec<Tree>),
}

impl Tree {
    /// A chain of `levels` nodes ending in a leaf.
    pub fn chain(levels: usize) -> Tree {
        let mut t = Tree::Leaf(7);
        for _ in 0..levels {
            t = Tree::Node(Box::new(t));
        }
        t
    }

    /// How deep the tree is, without recursion (so dropping and measuring a deep tree is safe).
    pub fn depth(&self) -> u64 {
        let mut stack = vec![(self, 0u64)];
        let mut max = 0;
        while let Some((t, d)) = stack.pop() {
            max = max.max(d);
            match t {
                Tree::Leaf(_) => {}
                Tree::Node(n) => stack.push((n, d + 1)),
                Tree::Branch(children) => stack.extend(children.iter().map(|c| (c, d + 1))),
            }
        }
        max
    }
}

/// An enum argument with three variants, for the bad-variant-index case (A3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Choice {
    /// First.
    A,
    /// Second.
    B(u8),
    /// Third.
    C {
        /// A field.
        x: u16,
    },
}

/// Version 1 of a record, as an older peer knows it (A4 schema skew).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordV1 {
    /// An id.
    pub id: u32,
    /// A name.
    pub name: String,
}

/// Version 2 of the same record, with a field added at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordV2 {
    /// An id.
    pub id: u32,
    /// A name.
    pub name: String,
    /// The new field.
    pub tags: Vec<String>,
}

/// The service every reliability test serves.
#[service]
pub trait Probe {
    /// Returns its argument.
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// Adds two numbers (wrapping).
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Sleeps `ms` milliseconds of Tokio time, then returns `ms`.
    async fn sleep(&self, ms: u64) -> u64;
    /// Waits until the test calls [`ProbeState::release`], then returns `tag`. Counts as running
    /// meanwhile; a drop before the end is recorded.
    async fn hold(&self, tag: u64) -> u64;
    /// Panics with `message`.
    async fn boom(&self, message: String) -> u64;
    /// Busy-loops for `ms` milliseconds of wall-clock time without yielding.
    async fn spin(&self, ms: u64) -> u64;
    /// Returns the depth of `tree`.
    async fn depth(&self, tree: Tree) -> u64;
    /// Returns `len` bytes.
    async fn blob(&self, len: u64) -> Vec<u8>;
    /// Returns a number for the variant.
    async fn pick(&self, choice: Choice) -> u8;
    /// Returns the string's length plus a few bits of the others.
    async fn scalars(&self, s: String, c: char, b: bool, o: Option<u8>) -> u64;
    /// Returns the length.
    async fn bytes(&self, v: Vec<u8>) -> u64;
    /// Returns the length.
    async fn text(&self, s: String) -> u64;
    /// Returns the length.
    async fn words(&self, v: Vec<u64>) -> u64;
    /// Returns the length.
    async fn hash_map(&self, m: HashMap<u64, u64>) -> u64;
    /// Returns the length.
    async fn btree_map(&self, m: BTreeMap<u64, u64>) -> u64;
    /// Returns the length.
    async fn units(&self, v: Vec<()>) -> u64;
    /// Returns the record's id.
    async fn record(&self, r: RecordV1) -> u32;
    /// Records `n`; the caller does not wait.
    #[oneway]
    async fn note(&self, n: u64);
}

/// What the server's handlers did, shared between the implementation and the test.
#[derive(Debug)]
pub struct ProbeState {
    running: watch::Sender<usize>,
    /// The most `hold`/`sleep`/`spin` handlers that ran at once.
    pub max_running: AtomicUsize,
    /// Handlers that ran to completion.
    pub finished: AtomicUsize,
    /// Handlers dropped before completing (cancelled, deadline, shutdown).
    pub dropped: AtomicUsize,
    /// Sum of every `note`.
    pub notes: AtomicUsize,
    /// Ends every `spin` loop when set.
    pub stop_spinning: std::sync::atomic::AtomicBool,
    release: Semaphore,
}

impl Default for ProbeState {
    fn default() -> Self {
        ProbeState {
            running: watch::Sender::new(0),
            max_running: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            notes: AtomicUsize::new(0),
            stop_spinning: std::sync::atomic::AtomicBool::new(false),
            release: Semaphore::new(0),
        }
    }
}

impl ProbeState {
    /// Lets `n` waiting (or future) `hold` calls return.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }

    /// Handlers of `hold`, `sleep` and `spin` running now.
    pub fn running(&self) -> usize {
        *self.running.borrow()
    }

    /// Waits until at least `n` handlers are running.
    pub async fn wait_running(&self, n: usize) {
        let mut rx = self.running.subscribe();
        let _ = rx.wait_for(|&r| r >= n).await;
    }

    /// Waits until no handler is running.
    pub async fn wait_idle(&self) {
        let mut rx = self.running.subscribe();
        let _ = rx.wait_for(|&r| r == 0).await;
    }

    /// Waits until at least `n` handlers have been dropped unfinished.
    pub async fn wait_dropped(&self, n: usize) {
        let mut rx = self.running.subscribe();
        loop {
            if self.dropped.load(Ordering::SeqCst) >= n {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn enter(self: &Arc<Self>) -> RunGuard {
        self.running.send_modify(|r| {
            *r += 1;
            self.max_running.fetch_max(*r, Ordering::SeqCst);
        });
        RunGuard { state: Arc::clone(self), done: false }
    }
}

/// Counts a running handler; records on drop whether it finished.
struct RunGuard {
    state: Arc<ProbeState>,
    done: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let counter = if self.done { &self.state.finished } else { &self.state.dropped };
        counter.fetch_add(1, Ordering::SeqCst);
        self.state.running.send_modify(|r| *r -= 1);
    }
}

/// The implementation of [`Probe`].
#[derive(Debug, Clone, Default)]
pub struct ProbeImpl {
    /// What the handlers did.
    pub state: Arc<ProbeState>,
}

impl Probe for ProbeImpl {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }

    async fn sleep(&self, ms: u64) -> u64 {
        let mut guard = self.state.enter();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        guard.done = true;
        ms
    }

    async fn hold(&self, tag: u64) -> u64 {
        let mut guard = self.state.enter();
        self.state.release.acquire().await.expect("never closed").forget();
        guard.done = true;
        tag
    }

    async fn boom(&self, message: String) -> u64 {
        crate::panics::deliberate(&message);
    }

    async fn spin(&self, ms: u64) -> u64 {
        let mut guard = self.state.enter();
        let start = std::time::Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(ms) && !self.state.stop_spinning.load(Ordering::SeqCst)
        {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        guard.done = true;
        n
    }

    async fn depth(&self, tree: Tree) -> u64 {
        tree.depth()
    }

    async fn blob(&self, len: u64) -> Vec<u8> {
        vec![0xab; len as usize]
    }

    async fn pick(&self, choice: Choice) -> u8 {
        match choice {
            Choice::A => 0,
            Choice::B(_) => 1,
            Choice::C { .. } => 2,
        }
    }

    async fn scalars(&self, s: String, c: char, b: bool, o: Option<u8>) -> u64 {
        s.len() as u64 + c as u64 + b as u64 + o.unwrap_or(0) as u64
    }

    async fn bytes(&self, v: Vec<u8>) -> u64 {
        v.len() as u64
    }

    async fn text(&self, s: String) -> u64 {
        s.len() as u64
    }

    async fn words(&self, v: Vec<u64>) -> u64 {
        v.len() as u64
    }

    async fn hash_map(&self, m: HashMap<u64, u64>) -> u64 {
        m.len() as u64
    }

    async fn btree_map(&self, m: BTreeMap<u64, u64>) -> u64 {
        m.len() as u64
    }

    async fn units(&self, v: Vec<()>) -> u64 {
        v.len() as u64
    }

    async fn record(&self, r: RecordV1) -> u32 {
        r.id
    }

    async fn note(&self, n: u64) {
        self.state.notes.fetch_add(n as usize, Ordering::SeqCst);
    }
}

/// Starts `n` `hold` calls (tags `0..n`) on tasks of their own; they stay in flight until the
/// probe releases them, the call is cancelled, or the connection dies.
pub fn spawn_holds(
    client: &ProbeClient,
    n: u64,
) -> Vec<tokio::task::JoinHandle<Result<u64, rpc_runtime::RpcError>>> {
    (0..n)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.hold(i).await })
        })
        .collect()
}
