use rpc_runtime::{service, Streaming};

#[service]
pub trait Merge {
    async fn merge(&self, left: Streaming<u8>, right: Streaming<u8>) -> u64;
}

fn main() {}
