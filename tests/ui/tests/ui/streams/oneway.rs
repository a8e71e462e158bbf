use rpc_runtime::{service, Streaming};

#[service]
pub trait Log {
    #[oneway]
    async fn lines(&self, lines: Streaming<String>);
}

fn main() {}
