use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get(&self, key: String) -> Result<String, String>;
}

struct Impl;

impl Store for Impl {
    fn get(&self, key: String) -> Result<String, String> {
        Err(key)
    }
}

fn main() {}
