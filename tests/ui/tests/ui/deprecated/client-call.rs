#![deny(deprecated)]

use rpc_runtime::service;

#[service]
pub trait Calculator {
    #[deprecated(note = "use `add` instead")]
    async fn plus(&self, a: i64, b: i64) -> i64;
    async fn add(&self, a: i64, b: i64) -> i64;
}

async fn caller(client: CalculatorClient) {
    let _ = client.plus(1, 2).await;
}

fn main() {
    let _ = caller;
}
