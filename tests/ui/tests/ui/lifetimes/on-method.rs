use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get<'a>(&self, key: String) -> Option<String>;
}

fn main() {}
