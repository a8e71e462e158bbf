use rpc_runtime::service;

#[derive(Debug)]
pub enum StoreError {
    Missing,
}

#[service]
pub trait Store {
    async fn get(&self, key: String) -> Result<String, StoreError>;
}

fn main() {}
