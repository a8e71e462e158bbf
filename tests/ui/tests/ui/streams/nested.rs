use rpc_runtime::{service, Streaming};

#[service]
pub trait Pages {
    async fn pages(&self) -> Streaming<Streaming<u8>>;
}

fn main() {}
