use rpc_runtime::service;

#[service]
pub trait Greeter {
    async fn hello(&self, name: String) -> String;
}

pub struct GreeterResponse {
    pub text: String,
}

fn main() {}
