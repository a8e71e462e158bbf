use rpc_runtime::service;

pub struct NotSerde;

#[service]
pub trait Svc {
    async fn put(&self, value: NotSerde);
}

fn main() {}
