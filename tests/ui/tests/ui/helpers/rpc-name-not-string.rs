use rpc_runtime::service;

#[service]
pub trait Store {
    #[rpc(name = fetch)]
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
