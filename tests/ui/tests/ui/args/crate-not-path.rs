use rpc_runtime::service;

#[service(crate = "rpc runtime")]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
