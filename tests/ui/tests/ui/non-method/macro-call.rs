use rpc_runtime::service;

macro_rules! nothing {
    () => {};
}

#[service]
pub trait Store {
    nothing!();
    async fn get(&self, key: String) -> Option<String>;
}

fn main() {}
