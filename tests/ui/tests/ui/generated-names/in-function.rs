use rpc_runtime::service;

fn main() {
    #[allow(dead_code)]
    enum GreeterRequest {
        Hello(String),
    }

    #[service]
    trait Greeter {
        async fn hello(&self, name: String) -> String;
    }
}
