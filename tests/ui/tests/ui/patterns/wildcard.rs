use rpc_runtime::service;

#[service]
pub trait Store {
    async fn put(&self, _: String);
}

fn main() {}
