use rpc_runtime::service;

#[service]
pub trait Health {
    fn ping(&self) -> u64;
}

struct Impl;

impl Health for Impl {
    fn ping(&self) -> u64 {
        0
    }
}

fn main() {}
