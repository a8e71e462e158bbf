use rpc_runtime::service;

#[service]
pub trait Greeter {
    async fn hello(&self, name: String) -> String;
}

pub struct GreeterClient {
    pub retries: u32,
}

fn main() {}
