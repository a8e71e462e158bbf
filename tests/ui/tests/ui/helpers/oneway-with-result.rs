use rpc_runtime::service;

#[service]
pub trait Log {
    #[oneway]
    async fn log(&self, line: String) -> bool;
}

struct Impl;

impl Log for Impl {
    async fn log(&self, line: String) -> bool {
        line.is_empty()
    }
}

fn main() {}
