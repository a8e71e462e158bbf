//! The command line, parsed by hand: five commands, three options, no dependency.

use std::time::Duration;

use rpc_examples::addr::Addr;
use rpc_runtime::Metadata;

/// What to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// `list ADDR`
    List,
    /// `describe ADDR SERVICE[.METHOD]`
    Describe { service: String, method: Option<String> },
    /// `call ADDR SERVICE.METHOD [JSON]`
    Call { service: String, method: String, json: String },
    /// `health ADDR`
    Health,
    /// `stats ADDR`
    Stats,
}

/// A parsed command line.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) command: Command,
    pub(crate) addr: Addr,
    pub(crate) deadline: Duration,
    pub(crate) metadata: Metadata,
    /// Print JSON rather than text (`list`, `describe`, `stats`; `call` always prints JSON).
    pub(crate) json: bool,
}

pub(crate) const USAGE: &str = "\
usage: rpc [OPTIONS] COMMAND ADDR [ARGS]

commands:
  list ADDR                          the services and methods the server hosts, with their types
  describe ADDR SERVICE[.METHOD]     a service's methods, or one method: argument names and types, result
  call ADDR SERVICE.METHOD [JSON]    call a method with a JSON array of arguments (default []); prints the JSON result
                                     (a stream of results: one JSON line per item, as each arrives, until
                                     the stream ends; a stream of arguments: read from stdin, one JSON item
                                     a line, blank lines skipped, EOF ends it)
  health ADDR                        serving or not (exit 0 when serving, 1 when not)
  stats ADDR                         calls, errors, in flight and latency percentiles per method

ADDR is tcp:HOST:PORT, unix:PATH or fifo:PATH. Service names may contain dots: the method is
what follows the last one (admin.Stats.count).

options:
  --deadline D      give up after D (500ms, 5s, 2m; a bare number is seconds); default 10s
  --metadata K=V    send a metadata pair with the call (repeatable)
  --json            print list, describe and stats as JSON
  -h, --help        this text

exit codes: 0 ok (a stream: it ended); 1 the server answered with an error (or is not serving;
a stream: the error that ended it, after the items before it); 2 bad usage, bad JSON (arguments or
a stdin line), wrong argument types, unknown service or method; 3 connection failed or lost;
4 deadline exceeded (a stream is followed until then at most); 130 interrupted (Ctrl-C)";

/// Parses the arguments after the program's name; `Err` is the message for a usage error, and
/// `Ok(None)` means help was asked for.
pub(crate) fn parse(raw: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut positional = Vec::new();
    let mut deadline = Duration::from_secs(10);
    let mut metadata = Metadata::new();
    let mut json = false;
    let mut raw = raw.into_iter();
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => json = true,
            "--deadline" => {
                let value = raw.next().ok_or("--deadline needs a value, e.g. --deadline 5s")?;
                deadline = parse_duration(&value)?;
            }
            "--metadata" => {
                let value = raw.next().ok_or("--metadata needs KEY=VALUE")?;
                let (k, v) =
                    value.split_once('=').ok_or_else(|| format!("--metadata `{value}`: write KEY=VALUE"))?;
                metadata.insert(k, v);
            }
            // A JSON argument may start with `-` (a negative number) but never with `--`.
            s if s.starts_with("--") => return Err(format!("unknown option `{s}`")),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let name = positional.next().ok_or("no command given")?;
    let addr = Addr::parse(&positional.next().ok_or_else(|| format!("`{name}` needs an address"))?)?;
    let mut target = |what: &str| positional.next().ok_or_else(|| format!("`{name}` needs {what}"));
    let command = match name.as_str() {
        "list" => Command::List,
        "health" => Command::Health,
        "stats" => Command::Stats,
        "describe" => {
            let target = target("SERVICE or SERVICE.METHOD")?;
            Command::Describe { service: target, method: None }
        }
        "call" => {
            let target = target("SERVICE.METHOD")?;
            let (service, method) = split_method(&target)?;
            let json = positional.next().unwrap_or_else(|| "[]".into());
            Command::Call { service, method, json }
        }
        other => return Err(format!("unknown command `{other}`")),
    };
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument `{extra}`"));
    }
    Ok(Some(Args { command, addr, deadline, metadata, json }))
}

/// `a.b.Service.method` → (`a.b.Service`, `method`).
pub(crate) fn split_method(target: &str) -> Result<(String, String), String> {
    match target.rsplit_once('.') {
        Some((s, m)) if !s.is_empty() && !m.is_empty() => Ok((s.to_owned(), m.to_owned())),
        _ => Err(format!("`{target}`: write SERVICE.METHOD, e.g. Calculator.add")),
    }
}

/// `500ms`, `5s`, `1.5s`, `2m`, or seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration `{text}`: write e.g. 500ms, 5s or 2m");
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Option<Args>, String> {
        parse(line.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
    }

    #[test]
    fn commands_and_options_parse() {
        let a = args("call tcp:127.0.0.1:1 math.Calc.add [1,2] --deadline 250ms --metadata k=v")
            .unwrap()
            .unwrap();
        assert!(matches!(&a.command, Command::Call { service, method, json }
            if service == "math.Calc" && method == "add" && json == "[1,2]"));
        assert_eq!(a.deadline, Duration::from_millis(250));
        assert_eq!(a.metadata.get("k"), Some("v"));
        assert!(args("--help").unwrap().is_none());
        for (bad, says) in [
            ("", "no command"),
            ("list", "needs an address"),
            ("list nowhere", "bad address"),
            ("call tcp:h:1 add", "SERVICE.METHOD"),
            ("call tcp:h:1 S.m [] extra", "unexpected argument"),
            ("list tcp:h:1 --deadline soon", "bad duration"),
            ("list tcp:h:1 --frobnicate", "unknown option"),
            ("frob tcp:h:1", "unknown command"),
        ] {
            let e = args(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
    }
}
