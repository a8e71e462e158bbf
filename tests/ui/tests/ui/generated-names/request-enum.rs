use rpc_runtime::service;

pub enum GreeterRequest {
    Hello(String),
}

#[service]
pub trait Greeter {
    async fn hello(&self, name: String) -> String;
}

fn main() {}
