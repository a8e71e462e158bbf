use rpc_runtime::service;

#[service]
pub trait Store {
    const CAPACITY: usize;
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
