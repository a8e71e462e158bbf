use rpc_runtime::service;

#[service]
pub trait Geometry {
    async fn area(&self, (w, h): (u32, u32)) -> u64;
}

struct Impl;

impl Geometry for Impl {
    async fn area(&self, (w, h): (u32, u32)) -> u64 {
        u64::from(w) * u64::from(h)
    }
}

fn main() {}
