use rpc_runtime::service;

#[service]
pub trait Catalog {
    async fn descriptor(&self) -> String;
}

fn main() {}
