use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get(&self, #[rpc(name = "k")] key: String) -> Option<String>;
}

fn main() {}
