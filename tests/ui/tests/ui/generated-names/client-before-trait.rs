use rpc_runtime::service;

pub struct GreeterClient;

#[service]
pub trait Greeter {
    async fn hello(&self, name: String) -> String;
}

fn main() {}
