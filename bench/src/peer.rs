//! The peer: tarpc 0.38 with its serde transport and bincode (`serde-transport-bincode`: tokio-util's
//! `LengthDelimitedCodec` framing plus `tokio_serde::formats::Bincode`), served the way tarpc's
//! own examples do (`BaseChannel::with_defaults`, one spawned task per request).

use std::io;

use bytes::Bytes;
use futures::StreamExt;
use rpc_runtime::transport::{BoxRead, BoxWrite};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::LengthDelimitedCodec;
use tarpc::{client, context, serde_transport};

use crate::endpoint::RawListener;
use crate::suite::Caller;

/// The benchmark service, as tarpc declares it.
#[tarpc::service]
pub(crate) trait TarpcBench {
    /// A 16-byte argument and result.
    async fn echo16(x: [u8; 16]) -> [u8; 16];
    /// A plain byte vector.
    async fn echo_vec(data: Vec<u8>) -> Vec<u8>;
    /// A byte-buffer type.
    async fn echo_buf(data: Bytes) -> Bytes;
}

#[derive(Clone)]
struct Echo;

impl TarpcBench for Echo {
    async fn echo16(self, _: context::Context, x: [u8; 16]) -> [u8; 16] {
        x
    }

    async fn echo_vec(self, _: context::Context, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn echo_buf(self, _: context::Context, data: Bytes) -> Bytes {
        data
    }
}

fn framed(
    r: BoxRead,
    w: BoxWrite,
) -> tokio_util::codec::Framed<tokio::io::Join<BoxRead, BoxWrite>, LengthDelimitedCodec> {
    // The same 4 MiB frame limit as the other two.
    LengthDelimitedCodec::builder().max_frame_length(4 * 1024 * 1024).new_framed(tokio::io::join(r, w))
}

/// Accepts connections forever, each served by a tarpc channel.
pub(crate) async fn serve(mut listener: RawListener) -> io::Result<()> {
    loop {
        let (r, w) = listener.accept().await?;
        tokio::spawn(channel(r, w));
    }
}

/// Serves the one connection of a pipe, until it ends.
pub(crate) async fn serve_one(r: BoxRead, w: BoxWrite) -> io::Result<()> {
    channel(r, w).await;
    Ok(())
}

/// One connection's tarpc channel, each request on a task of its own.
async fn channel(r: BoxRead, w: BoxWrite) {
    let transport = serde_transport::new(framed(r, w), Bincode::default());
    BaseChannel::with_defaults(transport)
        .execute(Echo.serve())
        .for_each(|call| async {
            tokio::spawn(call);
        })
        .await;
}

/// A tarpc client on a byte stream, with its dispatch task spawned.
pub(crate) fn client(io: (BoxRead, BoxWrite)) -> TarpcBenchClient {
    let transport = serde_transport::new(framed(io.0, io.1), Bincode::default());
    TarpcBenchClient::new(client::Config::default(), transport).spawn()
}

impl Caller for TarpcBenchClient {
    async fn echo16(&self, x: [u8; 16]) -> [u8; 16] {
        TarpcBenchClient::echo16(self, context::current(), x).await.expect("echo16")
    }

    async fn echo_vec(&self, data: Vec<u8>) -> Vec<u8> {
        TarpcBenchClient::echo_vec(self, context::current(), data).await.expect("echo_vec")
    }

    async fn echo_buf(&self, data: Bytes) -> Bytes {
        TarpcBenchClient::echo_buf(self, context::current(), data).await.expect("echo_buf")
    }
}
