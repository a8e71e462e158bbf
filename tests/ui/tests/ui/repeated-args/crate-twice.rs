use rpc_runtime::service;

#[service(crate = "::rpc_runtime", crate = "::rpc_runtime")]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
