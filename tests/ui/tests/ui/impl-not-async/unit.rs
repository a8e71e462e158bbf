use rpc_runtime::service;

#[service]
pub trait Health {
    async fn ping(&self);
}

struct Impl;

impl Health for Impl {
    fn ping(&self) {}
}

fn main() {}
