use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get(&self, key: String) -> Option<String>;

    fn normalize(key: &str) -> &str {
        key.trim()
    }
}

fn main() {}
