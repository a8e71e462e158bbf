use rpc_runtime::service;

#[service]
pub trait Storage {
    async fn write(&self, data: &[u8]) -> usize;
}

fn main() {}
