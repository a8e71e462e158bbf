use rpc_runtime::{service, Streaming};

#[service]
pub trait Log {
    #[oneway]
    async fn tail(&self) -> Streaming<String>;
}

fn main() {}
