use rpc_runtime::service;

#[service(name = "billing invoices")]
pub trait Invoices {
    async fn total(&self) -> u64;
}

#[service(name = "billing..Invoices")]
pub trait Refunds {
    async fn total(&self) -> u64;
}

#[service(name = "")]
pub trait Empty {
    async fn total(&self) -> u64;
}

#[service(name = Invoices)]
pub trait NotAString {
    async fn total(&self) -> u64;
}

fn main() {}
