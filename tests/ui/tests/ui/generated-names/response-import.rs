use rpc_runtime::service;

mod types {
    pub struct GreeterResponse;
}

use types::GreeterResponse;

#[service]
pub trait Greeter {
    async fn hello(&self, name: String) -> String;
}

fn main() {}
