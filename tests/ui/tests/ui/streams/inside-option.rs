use rpc_runtime::{service, Streaming};

#[service]
pub trait Maybe {
    async fn maybe(&self) -> Option<Streaming<u8>>;
}

fn main() {}
