use rpc_runtime::service;

#[service]
pub trait Jobs {
    #[rpc(run_to_completion, run_to_completion)]
    async fn commit(&self, id: u64);
}

fn main() {}
