use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get(&self, key: String) -> ;
}

fn main() {}
