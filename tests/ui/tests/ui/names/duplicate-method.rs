use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get(&self, key: String) -> Option<String>;
    async fn get(&self, key: u64) -> Option<String>;
}

fn main() {}
