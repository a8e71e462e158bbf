use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get<'a>(&self, key: &'a str) -> Option<String>;
}

fn main() {}
