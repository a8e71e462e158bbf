use rpc_runtime::service;

#[service]
pub trait Store {
    type Key;
    fn get(&self, key: &str) -> Option<String>;
    async fn put(&mut self, (k, v): (String, String));
}

fn main() {}
