use std::future::Future;

use rpc_runtime::service;

#[service]
pub trait Counter {
    fn next(&self) -> impl Future<Output = u64> + Send + Unpin;
}

fn main() {}
