use rpc_runtime::service;

#[service]
pub trait Health {
    extern "C" fn ping(&self) -> u64;
}

fn main() {}
