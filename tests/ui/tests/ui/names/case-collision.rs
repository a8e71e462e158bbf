use rpc_runtime::service;

#[service]
pub trait Store {
    async fn foo_bar(&self);
    async fn foo__bar(&self);
}

fn main() {}
