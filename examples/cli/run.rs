//! The commands, against a connected server.

use std::borrow::Cow;

use rpc_runtime::describe::MethodKind;
use rpc_runtime::introspection::{self, IntrospectionClient, MethodInfo};
use rpc_runtime::{Call, Client, Format, Hello, Metadata, MethodRef, RpcError};
use tokio::time::Instant;
use tower::Service as _;

use crate::args::{split_method, Args, Command};
use crate::{exit, show, stream, Failure};

/// Runs one command within the deadline, or until Ctrl-C.
pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let deadline = Instant::now() + args.deadline;
    let limit = args.deadline;
    // Polled first, so the handler is installed before anything is sent or printed.
    let interrupted = tokio::signal::ctrl_c();
    tokio::select! {
        biased;
        _ = interrupted => Err(fail(exit::INTERRUPTED, "interrupted".into())),
        done = tokio::time::timeout_at(deadline, command(args, deadline)) => match done {
            Ok(done) => done,
            Err(_) => Err(fail(exit::DEADLINE, format!("deadline exceeded: no answer within {limit:?}"))),
        },
    }
}

async fn command(args: Args, deadline: Instant) -> Result<(), Failure> {
    let conn = args
        .addr
        .connect()
        .await
        .map_err(|e| fail(exit::CONNECTION, format!("cannot connect to {}: {e}", args.addr)))?;
    // JSON throughout: a streaming call's items are encoded in the client's format, and only
    // JSON lets them travel as untyped `serde_json::Value`s.
    let client = Client::builder()
        .format(Format::Json)
        .build(conn)
        .with_metadata(args.metadata)
        .map_err(rpc_failure)?;
    let intro = IntrospectionClient::from_client(client.clone());
    match args.command {
        Command::List => list(&client, &intro, args.json).await,
        Command::Describe { service, method } => describe(&intro, service, method, args.json).await,
        Command::Call { service, method, json } => {
            call(&client, &intro, service, method, &json, deadline).await
        }
        Command::Health => health(&intro).await,
        Command::Stats => {
            let stats = intro.stats().await.map_err(introspection_failure)?;
            println!("{}", if args.json { to_json(&stats) } else { show::stats(&stats) });
            Ok(())
        }
    }
}

async fn list(client: &Client, intro: &IntrospectionClient, json: bool) -> Result<(), Failure> {
    let services = match intro.list().await {
        Ok(services) => services,
        Err(RpcError::UnknownService(_)) => return list_from_hello(&hello(client)?, json),
        Err(e) => return Err(rpc_failure(e)),
    };
    let mut described = Vec::new();
    for s in &services {
        let methods = intro.describe(s.name.clone(), None).await.map_err(rpc_failure)?;
        described.push((s.name.clone(), methods.map_err(|e| fail(exit::SERVER_ERROR, e))?));
    }
    if json {
        let all: Vec<&MethodInfo> = described.iter().flat_map(|(_, m)| m).collect();
        println!("{}", to_json(&all));
        return Ok(());
    }
    for (name, methods) in described {
        println!("{name}");
        for m in methods {
            println!("  {}", show::signature(&m));
        }
    }
    Ok(())
}

/// A server that opted out of introspection still names its methods in its HELLO.
fn list_from_hello(hello: &Hello, json: bool) -> Result<(), Failure> {
    for s in hello.services() {
        for m in s.methods() {
            if json {
                println!(
                    r#"{{"service":{:?},"name":{:?},"kind":"{}","signature_hash":{}}}"#,
                    s.name(),
                    m.name(),
                    m.kind(),
                    m.signature_hash()
                );
            } else {
                println!("{}.{}  {}  {:#018x}", s.name(), m.name(), m.kind(), m.signature_hash());
            }
        }
    }
    eprintln!("rpc: the server does not host {}: no types to show", introspection::SERVICE_NAME);
    Ok(())
}

async fn describe(
    intro: &IntrospectionClient,
    target: String,
    method: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    // `a.b.C` may be a service, or the method `C` of `a.b`.
    let mut found = intro.describe(target.clone(), method).await.map_err(introspection_failure)?;
    if let (Err(_), Ok((service, method))) = (&found, split_method(&target)) {
        if let Ok(Ok(one)) = intro.describe(service, Some(method)).await {
            found = Ok(one);
        }
    }
    let methods = found.map_err(|e| fail(exit::USAGE, e))?;
    if json {
        println!("{}", to_json(&methods));
    } else {
        let text: Vec<String> = methods.iter().map(show::method).collect();
        println!("{}", text.join("\n\n"));
    }
    Ok(())
}

async fn call(
    client: &Client,
    intro: &IntrospectionClient,
    service: String,
    method: String,
    json: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let (kind, info) = lookup(client, intro, &service, &method).await?;
    let expected = || info.as_ref().map(|m| format!("\n{}", show::expected(m))).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| fail(exit::USAGE, format!("the arguments are not valid JSON: {e}{}", expected())))?;
    let serde_json::Value::Array(items) = &value else {
        return Err(fail(exit::USAGE, format!("the arguments must be a JSON array{}", expected())));
    };
    if let Some(m) = &info {
        if items.len() != show::call_args(m).count() {
            let got = items.len();
            return Err(fail(exit::USAGE, format!("{got} argument(s) given{}", expected())));
        }
    }
    if !matches!(kind, MethodKind::Unary | MethodKind::Oneway) {
        // A CLI makes one call and exits: leaking the two names gives the `'static` a
        // `MethodRef` holds.
        let service: &'static str = Box::leak(service.into_boxed_str());
        let method: &'static str = Box::leak(method.into_boxed_str());
        let method = MethodRef::dynamic(service, method, kind, 0);
        let client = client.with_timeout(deadline.saturating_duration_since(Instant::now()));
        return stream::call(&client, &method, &value).await.map_err(|mut f| {
            if f.code == exit::USAGE {
                f.message.push_str(&expected());
            }
            f
        });
    }
    let body = serde_json::to_vec(&value).expect("a parsed value re-encodes");
    let call = Call {
        service: Cow::Owned(service),
        method: Cow::Owned(method),
        kind,
        format: Format::Json,
        signature: 0,
        deadline: Some(deadline),
        metadata: Metadata::new(),
        body: body.into(),
        // The tool retries nothing.
        idempotent: false,
    };
    let mut client = client.clone();
    std::future::poll_fn(|cx| client.poll_ready(cx)).await.map_err(rpc_failure)?;
    match tower::Service::call(&mut client, call).await {
        Ok(reply) if kind == MethodKind::Oneway => drop(reply),
        Ok(reply) => println!("{}", String::from_utf8_lossy(&reply.body)),
        Err(RpcError::Decode(why)) => {
            return Err(fail(
                exit::USAGE,
                format!("the server could not decode the arguments: {why}{}", expected()),
            ))
        }
        Err(e) => return Err(rpc_failure(e)),
    }
    Ok(())
}

/// The method's kind, and its description if the server has introspection.
async fn lookup(
    client: &Client,
    intro: &IntrospectionClient,
    service: &str,
    method: &str,
) -> Result<(MethodKind, Option<MethodInfo>), Failure> {
    let info = match intro.describe(service.to_owned(), Some(method.to_owned())).await {
        Ok(Ok(mut one)) => one.pop(),
        Ok(Err(unknown)) => return Err(fail(exit::USAGE, unknown)),
        Err(RpcError::UnknownService(_)) => None,
        Err(e) => return Err(rpc_failure(e)),
    };
    let kind = match &info {
        Some(m) => kind_named(&m.kind),
        None => {
            let hello = hello(client)?;
            let Some(s) = hello.service(service) else {
                let names: Vec<_> = hello.services().iter().map(|s| s.name()).collect();
                return Err(fail(
                    exit::USAGE,
                    format!("no service `{service}`; the server hosts: {}", names.join(", ")),
                ));
            };
            let Some(m) = s.method(method) else {
                let names: Vec<_> = s.methods().iter().map(|m| m.name()).collect();
                return Err(fail(
                    exit::USAGE,
                    format!("`{service}` has no method `{method}`; its methods: {}", names.join(", ")),
                ));
            };
            Some(m.kind())
        }
    };
    match kind {
        Some(k) => Ok((k, info)),
        None => Err(fail(exit::USAGE, format!("`{service}.{method}` is of a kind this tool does not know"))),
    }
}

fn kind_named(name: &str) -> Option<MethodKind> {
    [
        MethodKind::Unary,
        MethodKind::Oneway,
        MethodKind::ServerStream,
        MethodKind::ClientStream,
        MethodKind::Bidi,
    ]
    .into_iter()
    .find(|k| k.as_str() == name)
}

async fn health(intro: &IntrospectionClient) -> Result<(), Failure> {
    match intro.health().await {
        Ok(status) => {
            println!("{}", to_json(&status));
            if status.serving {
                Ok(())
            } else {
                Err(fail(exit::SERVER_ERROR, format!("the server is {}", status.status)))
            }
        }
        Err(RpcError::ShuttingDown) => Err(fail(exit::SERVER_ERROR, "the server is shutting down".into())),
        Err(e) => Err(introspection_failure(e)),
    }
}

/// The server's HELLO (it precedes every reply, so it is here once a call has been answered).
fn hello(client: &Client) -> Result<Hello, Failure> {
    client.server_hello().ok_or_else(|| fail(exit::CONNECTION, "the server sent no HELLO".into()))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("introspection values encode as JSON")
}

pub(crate) fn fail(code: u8, message: String) -> Failure {
    Failure { code, message }
}

/// A failed call to the introspection service, saying so when the server has none.
fn introspection_failure(e: RpcError) -> Failure {
    match e {
        RpcError::UnknownService(_) => fail(
            exit::SERVER_ERROR,
            format!("the server does not host {} (it opted out)", introspection::SERVICE_NAME),
        ),
        e => rpc_failure(e),
    }
}

/// The exit code of a framework error.
pub(crate) fn rpc_failure(e: RpcError) -> Failure {
    let code = match &e {
        RpcError::DeadlineExceeded => exit::DEADLINE,
        RpcError::ConnectionClosed(_)
        | RpcError::Io(_)
        | RpcError::Unavailable { .. }
        | RpcError::Protocol(_) => exit::CONNECTION,
        RpcError::UnknownMethod(_)
        | RpcError::UnknownService(_)
        | RpcError::Decode(_)
        | RpcError::Encode(_)
        | RpcError::SignatureMismatch { .. }
        | RpcError::MetadataTooLarge(_)
        | RpcError::FrameTooLarge { .. } => exit::USAGE,
        _ => exit::SERVER_ERROR,
    };
    fail(code, e.to_string())
}
