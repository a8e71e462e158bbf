use rpc_runtime::service;

pub struct Entry {
    pub value: String,
}

#[service]
pub trait Store {
    async fn get(&self, key: String) -> std::result::Result<Entry, String>;
}

fn main() {}
