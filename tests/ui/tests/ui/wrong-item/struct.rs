use rpc_runtime::service;

#[service]
pub struct Calculator {
    total: i64,
}

fn main() {}
