use std::future::Future;

use rpc_runtime::service;

#[service]
pub trait Counter {
    fn next(&self) -> impl Future + Send;
}

fn main() {}
