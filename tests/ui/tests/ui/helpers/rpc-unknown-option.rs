use rpc_runtime::service;

#[service]
pub trait Store {
    #[rpc(nmae = "fetch")]
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
