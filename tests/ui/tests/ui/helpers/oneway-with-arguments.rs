use rpc_runtime::service;

#[service]
pub trait Log {
    #[oneway(always)]
    async fn log(&self, line: String);
}

fn main() {}
