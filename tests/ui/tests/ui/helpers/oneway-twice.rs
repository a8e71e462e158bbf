use rpc_runtime::service;

#[service]
pub trait Log {
    #[oneway]
    #[oneway]
    async fn log(&self, line: String);
}

fn main() {}
