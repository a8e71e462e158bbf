use rpc_runtime::service;

#[service]
pub trait Store {
    #[rpc(name = "fetch")]
    #[rpc(name = "load")]
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
