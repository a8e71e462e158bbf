use rpc_runtime::service;

#[service]
pub trait Text {
    async fn shout(&self, mut text: String) -> String;
}

struct Impl;

impl Text for Impl {
    async fn shout(&self, mut text: String) -> String {
        text.make_ascii_uppercase();
        text
    }
}

fn main() {}
