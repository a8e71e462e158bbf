use rpc_runtime::{service, Streaming};

#[service]
pub trait Feed {
    #[rpc(persistent)]
    async fn watch(&self, topic: String) -> Streaming<u64>;
}

fn main() {}
