use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get(self: Box<Self>, key: String) -> Option<String>;
}

fn main() {}
