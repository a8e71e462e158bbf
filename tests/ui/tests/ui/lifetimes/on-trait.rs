use rpc_runtime::service;

#[service]
pub trait Store<'a> {
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
