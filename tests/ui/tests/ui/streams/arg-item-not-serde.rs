use rpc_runtime::{service, Streaming};

pub struct NotSerde;

#[service]
pub trait Upload {
    async fn upload(&self, chunks: Streaming<NotSerde>) -> u64;
}

fn main() {}
