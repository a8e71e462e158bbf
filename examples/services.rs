//! Two services on one TCP server, told apart by name; a client wrapped in tower layers; what a
//! client built from another version of a trait gets; metadata; a JSON client.
//!
//! ```text
//! cargo run -p rpc-examples --example services
//! ```

use std::time::Duration;

use rpc_runtime::transport::tcp;
use rpc_runtime::{service, Client, Context, Format, Metadata, Router, RpcError, Server};

/// Keeps accounts.
#[service(name = "bank.Accounts")]
pub trait Accounts {
    /// The balance of `account`, in cents.
    async fn balance(&self, account: String) -> i64;
    /// Who is calling, as the caller's metadata says.
    async fn whoami(&self) -> Option<String>;
}

/// Counts what the server did.
#[service(name = "admin.Stats")]
pub trait Stats {
    /// Calls served so far.
    async fn balance(&self) -> u64;
}

/// Another team's copy of `Accounts`, where `balance` takes an account number.
mod old_copy {
    use rpc_runtime::service;

    /// Keeps accounts (an older copy of the trait).
    #[service(name = "bank.Accounts")]
    pub(crate) trait Accounts {
        /// The balance of account number `account`.
        async fn balance(&self, account: u32) -> i64;
    }
}

struct Bank;

impl Accounts for Bank {
    async fn balance(&self, account: String) -> i64 {
        account.len() as i64 * 100
    }
    async fn whoami(&self) -> Option<String> {
        Context::current()?.metadata().get("x-caller").map(str::to_owned)
    }
}

impl Stats for Bank {
    async fn balance(&self) -> u64 {
        7
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let listener = tcp::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr();
    let router = Router::new().add_service(AccountsServer::new(Bank)).add_service(StatsServer::new(Bank));
    let server = Server::new(router).serve(listener);

    // One connection, two services: each client names its own, so the two `balance` methods
    // never meet.
    let client = Client::new(tcp::connect(addr).await?);
    let accounts = AccountsClient::from_client(client.clone());
    let stats = StatsClient::from_client(client.clone());
    println!("accounts.balance(\"ada\") = {}", accounts.balance("ada".into()).await?);
    println!("stats.balance()          = {}", stats.balance().await?);
    let hello = client.server_hello().expect("the server's HELLO came before its replies");
    let names: Vec<_> = hello.services().iter().map(|s| s.name()).collect();
    println!("the server hosts {names:?}");

    // The older copy's `balance` has other argument types: the server refuses it, unrun.
    let old = old_copy::AccountsClient::from_client(client.clone());
    match old.balance(42).await {
        Err(RpcError::SignatureMismatch { method, .. }) => {
            println!("old copy: signature mismatch on {method}")
        }
        other => println!("old copy: {other:?}"),
    }

    // Tower's layers fit between a generated client and its connection.
    let layered = tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(2))
        .concurrency_limit(16)
        .service(client.with_metadata(Metadata::from_iter([("x-caller", "example")]))?);
    let through_tower = AccountsClient::from_service(layered);
    println!("through tower, whoami()  = {:?}", through_tower.whoami().await?);

    // A JSON client: readable traffic, and what a peer in another language speaks.
    let json = Client::builder().format(Format::Json).build(tcp::connect(addr).await?);
    println!(
        "over JSON, balance(\"bob\") = {}",
        AccountsClient::from_client(json).balance("bob".into()).await?
    );

    server.shutdown(Duration::from_secs(1)).await;
    println!("server shut down");
    Ok(())
}
