use std::future::Future;
use std::pin::Pin;

use rpc_runtime::service;

#[service]
pub trait Counter {
    fn next(&self) -> Pin<Box<dyn Future<Output = u64> + Send>>;
}

fn main() {}
