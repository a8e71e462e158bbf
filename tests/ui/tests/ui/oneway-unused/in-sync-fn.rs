#![deny(unused_must_use)]

use rpc_runtime::service;

#[service]
pub trait Logger {
    #[oneway]
    async fn log(&self, line: String);
}

fn caller(client: &LoggerClient) {
    client.log(String::from("started"));
}

fn main() {
    let _ = caller;
}
