//! One test suite, two backends: the embedded default (an in-process [`Bus`] and a SQLite
//! [`FileQueue`]) and NATS (a real `nats-server` per test, feature `nats`). A test is a generic
//! `async fn name<B: Backend>()`; [`per_backend!`](crate::per_backend) stamps a `#[tokio::test]`
//! of it for each backend.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use rpc_runtime::embedded::{Bus, BusChannel, BusServer, FileQueue, FileQueueConfig, FileWorker};
use rpc_runtime::queued::PersistentQueue;
use rpc_runtime::{Call, MethodRef, Reply, RpcError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::within;
use crate::work::{WorkImpl, WorkServer, WorkerProcess};

/// How a [`Running`] stops, given the grace for the calls running.
type Stop = Box<dyn FnOnce(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A running server or worker of a test: [`Running::shutdown`] stops it.
pub struct Running(Stop);

impl Running {
    /// Stops it, giving the calls running `grace`.
    pub async fn shutdown(self, grace: Duration) {
        (self.0)(grace).await;
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Running")
    }
}

/// The queue settings a test chooses; each backend maps them onto its own configuration.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// How long outcomes are kept.
    pub retention: Duration,
    /// Deliveries before a dead letter.
    pub max_attempts: u32,
    /// How long a worker may hold a call before it is delivered again.
    pub ack_wait: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            retention: Duration::from_secs(3600),
            max_attempts: 5,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// What the shared suite needs of a backend.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The tower channel generated clients call through.
    type Channel: tower::Service<Call, Response = Reply, Error = RpcError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static;
    /// The persistent queue.
    type Queue: PersistentQueue + Clone;

    /// A fresh backend (a broker, or a bus and a queue file) for one test.
    fn start() -> impl Future<Output = Self> + Send;
    /// A channel; with `timeout`, calls without a deadline get that one.
    fn channel(&self, timeout: Option<Duration>) -> Self::Channel;
    /// A channel whose one-way calls reach every instance.
    fn broadcasting(&self) -> Self::Channel;
    /// Calls `method` on every instance, collecting the replies within `window`.
    fn gather<A: Serialize + Send, R: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static MethodRef,
        args: A,
        window: Duration,
    ) -> impl Future<Output = Result<Vec<Result<R, RpcError>>, RpcError>> + Send;
    /// The number of live instances of `service` discovery reports.
    fn instances(&self, service: &'static str) -> impl Future<Output = usize> + Send;
    /// Serves `work` as one instance, at most `max_concurrent` calls at once.
    fn serve(&self, work: WorkImpl, max_concurrent: usize) -> impl Future<Output = Running> + Send;
    /// Instances named `names`, as real worker processes where the backend has processes
    /// (NATS), in this process otherwise (the bus is in-process by definition).
    fn instances_named(&self, names: &[&str]) -> impl Future<Output = Vec<Running>> + Send;
    /// The persistent queue, opened with `settings`.
    fn queue(&self, settings: &QueueSettings) -> impl Future<Output = Self::Queue> + Send;
    /// A worker of stored calls in this process.
    fn queue_worker(
        &self,
        work: WorkImpl,
        settings: &QueueSettings,
        max_concurrent: usize,
    ) -> impl Future<Output = Running> + Send;
    /// A worker of stored calls in its own process (ack wait 1 s), printing "sleeping" when a
    /// `sleep_ms` handler starts.
    fn queue_worker_process(&self, name: &str) -> WorkerProcess;
}

/// The embedded default: a [`Bus`] and a [`FileQueue`] in a temporary directory.
#[derive(Debug)]
pub struct Embedded {
    bus: Bus,
    dir: tempfile::TempDir,
}

impl Embedded {
    /// The queue file of this test.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("calls.sqlite")
    }

    fn config(settings: &QueueSettings) -> FileQueueConfig {
        FileQueueConfig {
            retention: settings.retention,
            max_attempts: settings.max_attempts,
            ack_wait: settings.ack_wait,
            ..FileQueueConfig::default()
        }
    }
}

impl Backend for Embedded {
    type Channel = BusChannel;
    type Queue = FileQueue;

    async fn start() -> Self {
        Embedded { bus: Bus::new(), dir: tempfile::tempdir().expect("temporary directory") }
    }

    fn channel(&self, timeout: Option<Duration>) -> BusChannel {
        let channel = BusChannel::new(&self.bus);
        timeout.map_or_else(|| channel.clone(), |t| channel.with_timeout(t))
    }

    fn broadcasting(&self) -> BusChannel {
        BusChannel::new(&self.bus).broadcasting()
    }

    async fn gather<A: Serialize + Send, R: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static MethodRef,
        args: A,
        window: Duration,
    ) -> Result<Vec<Result<R, RpcError>>, RpcError> {
        BusChannel::new(&self.bus).gather_method(method, args, window).await
    }

    async fn instances(&self, service: &'static str) -> usize {
        self.bus.instances(service).len()
    }

    async fn serve(&self, work: WorkImpl, max_concurrent: usize) -> Running {
        let handle = BusServer::new(WorkServer::new(work)).max_concurrent(max_concurrent).serve(&self.bus);
        Running(Box::new(move |grace| Box::pin(handle.shutdown(grace))))
    }

    async fn instances_named(&self, names: &[&str]) -> Vec<Running> {
        let mut out = Vec::new();
        for name in names {
            out.push(self.serve(WorkImpl::named(name), 1024).await);
        }
        out
    }

    async fn queue(&self, settings: &QueueSettings) -> FileQueue {
        within(10, "open the queue file", FileQueue::open(self.path(), Embedded::config(settings)))
            .await
            .expect("open the queue file")
    }

    async fn queue_worker(&self, work: WorkImpl, settings: &QueueSettings, max_concurrent: usize) -> Running {
        let queue = self.queue(settings).await;
        let handle = FileWorker::new(WorkServer::new(work)).max_concurrent(max_concurrent).serve(&queue);
        Running(Box::new(move |grace| Box::pin(handle.shutdown(grace))))
    }

    fn queue_worker_process(&self, name: &str) -> WorkerProcess {
        WorkerProcess::embedded(&self.path(), name)
    }
}

#[cfg(feature = "nats")]
pub use self::nats::Nats;

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use crate::nats::Broker;
    use rpc_runtime::nats::{
        self, CallQueue, NatsChannel, NatsConnection, NatsServer, QueueConfig, QueueWorker,
    };

    /// NATS: a real broker of this test, and a connection to it.
    #[derive(Debug)]
    pub struct Nats {
        broker: Broker,
        connection: NatsConnection,
    }

    impl Nats {
        /// The broker, for tests that kill and restart it.
        pub fn broker(&mut self) -> &mut Broker {
            &mut self.broker
        }

        /// The connection.
        pub fn connection(&self) -> &NatsConnection {
            &self.connection
        }

        fn config(settings: &QueueSettings) -> QueueConfig {
            QueueConfig {
                retention: settings.retention,
                max_attempts: settings.max_attempts,
                ack_wait: settings.ack_wait,
                ..QueueConfig::default()
            }
        }
    }

    impl Backend for Nats {
        type Channel = NatsChannel;
        type Queue = CallQueue;

        async fn start() -> Self {
            let broker = Broker::start();
            let connection =
                within(10, "connect to the broker", nats::connect(broker.url())).await.expect("connect");
            Nats { broker, connection }
        }

        fn channel(&self, timeout: Option<Duration>) -> NatsChannel {
            let channel = NatsChannel::new(&self.connection);
            timeout.map_or_else(|| channel.clone(), |t| channel.with_timeout(t))
        }

        fn broadcasting(&self) -> NatsChannel {
            NatsChannel::new(&self.connection).broadcasting()
        }

        async fn gather<A: Serialize + Send, R: DeserializeOwned + Send + 'static>(
            &self,
            method: &'static MethodRef,
            args: A,
            window: Duration,
        ) -> Result<Vec<Result<R, RpcError>>, RpcError> {
            NatsChannel::new(&self.connection).gather_method(method, args, window).await
        }

        async fn instances(&self, service: &'static str) -> usize {
            nats::instances(&self.connection, service, Duration::from_millis(500))
                .await
                .expect("instances")
                .len()
        }

        async fn serve(&self, work: WorkImpl, max_concurrent: usize) -> Running {
            let handle = NatsServer::new(WorkServer::new(work))
                .max_concurrent(max_concurrent)
                .serve(&self.connection)
                .await
                .expect("serve");
            Running(Box::new(move |grace| Box::pin(handle.shutdown(grace))))
        }

        async fn instances_named(&self, names: &[&str]) -> Vec<Running> {
            let url = self.broker.url();
            names
                .iter()
                .map(|name| {
                    let process = WorkerProcess::start(&url, name, false);
                    Running(Box::new(move |_| Box::pin(async move { drop(process) })))
                })
                .collect()
        }

        async fn queue(&self, settings: &QueueSettings) -> CallQueue {
            within(10, "open the queue", CallQueue::open(&self.connection, Nats::config(settings)))
                .await
                .expect("open the queue")
        }

        async fn queue_worker(
            &self,
            work: WorkImpl,
            settings: &QueueSettings,
            max_concurrent: usize,
        ) -> Running {
            let handle = QueueWorker::new(WorkServer::new(work))
                .config(Nats::config(settings))
                .max_concurrent(max_concurrent)
                .serve(&self.connection)
                .await
                .expect("serve the queue");
            Running(Box::new(move |grace| Box::pin(handle.shutdown(grace))))
        }

        fn queue_worker_process(&self, name: &str) -> WorkerProcess {
            WorkerProcess::start(&self.broker.url(), name, true)
        }
    }
}

/// Stamps, for each generic test `name<B: Backend>()` listed, a `#[tokio::test]` per backend:
/// `embedded::name` and (feature `nats`) `nats::name`.
#[macro_export]
macro_rules! per_backend {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test::<$crate::backend::Embedded>().await
                }
            )*
        }
        #[cfg(feature = "nats")]
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test::<$crate::backend::Nats>().await
                }
            )*
        }
    };
}
