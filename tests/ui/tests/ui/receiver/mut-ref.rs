use rpc_runtime::service;

#[service]
pub trait Counter {
    async fn increment(&mut self) -> u64;
}

struct Impl(u64);

impl Counter for Impl {
    async fn increment(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn main() {}
