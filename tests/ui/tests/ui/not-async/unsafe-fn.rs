use rpc_runtime::service;

#[service]
pub trait Health {
    unsafe fn ping(&self) -> u64;
}

fn main() {}
