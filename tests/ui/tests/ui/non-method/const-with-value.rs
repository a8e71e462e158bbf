use rpc_runtime::service;

#[service]
pub trait Store {
    const CAPACITY: usize = 16;
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
