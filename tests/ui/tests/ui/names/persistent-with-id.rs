use rpc_runtime::service;

#[service]
pub trait Mailer {
    #[rpc(persistent)]
    async fn send(&self, to: String) -> u64;
    #[rpc(persistent)]
    async fn send_with_id(&self, to: String) -> u64;
}

fn main() {}
