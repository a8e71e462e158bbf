use rpc_runtime::service;

#[service]
pub trait Node {
    async fn copy(&self) -> Self;
}

fn main() {}
