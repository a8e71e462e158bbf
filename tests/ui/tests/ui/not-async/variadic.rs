use rpc_runtime::service;

#[service]
pub trait Log {
    async fn log(&self, format: String, args: ...);
}

fn main() {}
