use rpc_runtime::{service, Streaming};

pub struct NotSerde;

#[service]
pub trait Watch {
    async fn watch(&self, prefix: String) -> Streaming<NotSerde>;
}

fn main() {}
