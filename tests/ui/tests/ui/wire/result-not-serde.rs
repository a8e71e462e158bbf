use rpc_runtime::service;

pub struct Point {
    pub x: i64,
    pub y: i64,
}

#[service]
pub trait Plotter {
    async fn origin(&self) -> Point;
}

fn main() {}
