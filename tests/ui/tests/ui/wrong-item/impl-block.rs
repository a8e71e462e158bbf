use rpc_runtime::service;

pub struct Calculator;

#[service]
impl Calculator {
    pub async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
