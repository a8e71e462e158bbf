use rpc_runtime::service;

use std::borrow::Cow;

#[service]
pub trait Greeter {
    async fn hello(&self, name: Cow<'_, str>) -> String;
}

fn main() {}
