use rpc_runtime::service;

#[service]
pub trait Greeter {
    async fn hello(&self, name: &str) -> String;
}

struct Impl;

impl Greeter for Impl {
    async fn hello(&self, name: &str) -> String {
        format!("hello, {name}")
    }
}

fn main() {}
