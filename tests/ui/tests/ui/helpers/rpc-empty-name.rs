use rpc_runtime::service;

#[service]
pub trait Store {
    #[rpc(name = "")]
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
