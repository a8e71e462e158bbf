use rpc_runtime::service;

use std::any::Any;

#[service]
pub trait Bag {
    async fn put(&self, value: Box<dyn Any + Send>);
}

fn main() {}
