use rpc_runtime::service;

#[service]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
}

struct Impl;

impl Calculator for Impl {
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
