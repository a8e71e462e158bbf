use rpc_runtime::service;

#[service]
pub trait Printer {
    async fn print(&self, value: impl std::fmt::Display);
}

fn main() {}
