use rpc_runtime::service;

#[service]
pub trait Storage {
    async fn write_all(&self, parts: Vec<&str>) -> usize;
}

fn main() {}
