use rpc_runtime::service;

pub struct GreeterServer;

#[service]
pub trait Greeter {
    async fn hello(&self, name: String) -> String;
}

fn main() {}
