//! `Bytes` (and large `Vec<u8>`) arguments and results over every transport: what is sent comes back, at every size
//! around the one from which a payload is read in place (a view of the frame rather than a
//! copy), in both formats, and payloads a handler keeps stay intact after their buffer is reused.

use rpc_runtime::{service, Bytes, Client, Format, Server};
use rpc_tests::*;

#[service]
pub(crate) trait Blobs {
    async fn echo(&self, data: Bytes) -> Bytes;
    /// A byte vector both ways: a large one is sent from its own buffer too.
    async fn echo_vec(&self, tag: u8, data: Vec<u8>) -> Vec<u8>;
    /// The argument's length and a checksum, with a second argument after it.
    async fn digest(&self, data: Bytes, salt: u8) -> (usize, u64);
    /// Keeps what it was sent: views must stay valid after their frame is gone.
    async fn keep(&self, data: Bytes) -> usize;
    async fn kept(&self) -> Vec<Bytes>;
}

#[derive(Default)]
struct Impl {
    kept: std::sync::Mutex<Vec<Bytes>>,
}

impl Blobs for Impl {
    async fn echo(&self, data: Bytes) -> Bytes {
        data
    }
    async fn echo_vec(&self, tag: u8, mut data: Vec<u8>) -> Vec<u8> {
        data.push(tag);
        data
    }
    async fn digest(&self, data: Bytes, salt: u8) -> (usize, u64) {
        (data.len(), data.iter().fold(u64::from(salt), |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b))))
    }
    async fn keep(&self, data: Bytes) -> usize {
        let mut kept = self.kept.lock().unwrap();
        kept.push(data);
        kept.len()
    }
    async fn kept(&self) -> Vec<Bytes> {
        self.kept.lock().unwrap().clone()
    }
}

/// Serves `Blobs` on one end of a `transport` pair and returns a client on the other.
async fn blobs(transport: Transport, format: Format) -> (BlobsClient, Box<dyn std::any::Any + Send>) {
    let (ours, theirs, keep) = raw_pair(transport).await;
    let handle = Server::new(BlobsServer::new(Impl::default())).serve_connection(theirs);
    let client = Client::builder().format(format).build(ours);
    (BlobsClient::from_client(client), Box::new((keep, handle)))
}

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect::<Vec<u8>>().into()
}

const SIZES: [usize; 7] = [0, 1, 1023, 1024, 1025, 64 * 1024, 300 * 1024];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_come_back_as_sent_over_every_transport() {
    for transport in
        [Transport::Tcp, Transport::Unix, Transport::Memory, Transport::PipePair, Transport::FifoPair]
    {
        let (client, _keep) = blobs(transport, Format::Postcard).await;
        for (i, len) in SIZES.into_iter().enumerate() {
            let data = payload(len, i as u8);
            let back = guard("echo", client.echo(data.clone())).await.unwrap();
            assert_eq!(back, data, "{transport:?}, {len} bytes");
            let mut vec = data.to_vec();
            let back = guard("echo_vec", client.echo_vec(9, vec.clone())).await.unwrap();
            vec.push(9);
            assert_eq!(back, vec, "{transport:?}, a vector of {len} bytes");
            let digest = guard("digest", client.digest(data.clone(), 3)).await.unwrap();
            assert_eq!(
                digest,
                (len, data.iter().fold(3u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b))))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_kept_by_a_handler_outlive_their_frames() {
    let (client, _keep) = blobs(Transport::Unix, Format::Postcard).await;
    // Many calls in flight, so that several arrive in one read and share one buffer.
    let sent: Vec<Bytes> = (0..32).map(|i| payload(2000 + i * 100, i as u8)).collect();
    let calls = sent.iter().map(|d| client.keep(d.clone()));
    let counts = guard("keep", futures::future::join_all(calls)).await;
    assert!(counts.into_iter().all(|n| n.is_ok()));
    let mut kept = guard("kept", client.kept()).await.unwrap();
    kept.sort_by_key(|b| b.len());
    assert_eq!(kept, sent, "every kept payload intact after later reads reused the buffer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_carries_bytes_too() {
    let (client, _keep) = blobs(Transport::Unix, Format::Json).await;
    for len in [0, 5, 4096] {
        let data = payload(len, 1);
        assert_eq!(guard("echo", client.echo(data.clone())).await.unwrap(), data);
    }
}

/// The same service written with byte vectors: the same bytes on the wire as `Blobs`.
mod as_vectors {
    use rpc_runtime::service;

    #[service(name = "Blobs")]
    pub(crate) trait BlobsAsVectors {
        async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    }
}

/// `Bytes` and `Vec<u8>` have one canonical shape (`seq<u8>`), so a method may switch between
/// them without a signature change, and a client of either calls a server of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_and_byte_vectors_have_one_signature_and_call_each_other() {
    use as_vectors::BlobsAsVectorsClient;
    let hash = |d: &rpc_runtime::describe::ServiceDescriptor| d.method("echo").unwrap().signature_hash();
    let (ours, theirs) = (BlobsClient::descriptor(), BlobsAsVectorsClient::descriptor());
    assert_eq!(ours.method("echo").unwrap().signature(), "unary (seq<u8>)->seq<u8>");
    assert_eq!(hash(ours), hash(theirs));
    let (conn, server, _keep) = raw_pair(Transport::Unix).await;
    let _handle = Server::new(BlobsServer::new(Impl::default())).serve_connection(server);
    let client = BlobsAsVectorsClient::new(conn);
    let data = vec![6u8; 20_000];
    assert_eq!(guard("echo", client.echo(data.clone())).await.unwrap(), data);
}
