use rpc_runtime::service;

#[service]
pub trait Mailer {
    #[rpc(persistent, persistent)]
    async fn send(&self, to: String) -> u64;
}

fn main() {}
