use rpc_runtime::service;

use std::collections::HashMap;

pub struct Point {
    pub x: i64,
    pub y: i64,
}

#[service]
pub trait Plotter {
    async fn plot_all(&self, points: Vec<HashMap<String, Point>>);
}

fn main() {}
