use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get<T>(&self, key: String) -> Option<T>;
}

fn main() {}
