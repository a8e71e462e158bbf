use rpc_runtime::service;

#[service]
pub trait Café {
    async fn order(&self) -> u64;
}

fn main() {}
