use rpc_runtime::service;

#[service]
pub trait Health {
    async fn ping(&self) -> u64 {
        0
    }
}

struct Impl;

impl Health for Impl {}

fn main() {}
