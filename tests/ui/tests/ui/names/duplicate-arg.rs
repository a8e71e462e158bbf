use rpc_runtime::service;

#[service]
pub trait Calculator {
    async fn add(&self, a: i64, a: i64) -> i64;
}

fn main() {}
