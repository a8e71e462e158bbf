use rpc_runtime::service;

#[service]
pub trait Storage {
    async fn name(&self) -> &'static str;
}

fn main() {}
