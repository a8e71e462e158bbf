use rpc_runtime::service;

#[service]
pub trait Store {
    async fn get(&self, key: String) -> Option<String>;

    fn describe(&self) -> String {
        String::from("a store")
    }
}

fn main() {}
