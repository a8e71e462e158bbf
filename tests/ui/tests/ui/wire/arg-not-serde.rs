use rpc_runtime::service;

pub struct Point {
    pub x: i64,
    pub y: i64,
}

#[service]
pub trait Plotter {
    async fn plot(&self, at: Point) -> bool;
}

struct Impl;

impl Plotter for Impl {
    async fn plot(&self, _at: Point) -> bool {
        true
    }
}

fn main() {}
