use rpc_runtime::service;

#[derive(serde::Serialize)]
pub struct Point {
    pub x: i64,
    pub y: i64,
}

#[service]
pub trait Plotter {
    async fn plot(&self, at: Point);
}

fn main() {}
