use rpc_runtime::service;

#[service]
#[oneway]
pub trait Log {
    async fn log(&self, line: String);
}

fn main() {}
