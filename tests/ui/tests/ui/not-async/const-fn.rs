use rpc_runtime::service;

#[service]
pub trait Health {
    const fn ping(&self) -> u64;
}

fn main() {}
