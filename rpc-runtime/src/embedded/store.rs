//! The SQLite file behind [`FileQueue`](super::FileQueue) and [`FileWorker`](super::FileWorker):
//! one table of calls, each row a stored call and, once run, its outcome. Every operation is one
//! transaction, so a process killed at any point leaves either the old row or the new one.
//!
//! WAL journal (readers never wait for the writer), `synchronous = FULL` (a commit is on disk
//! when it returns: "stored" means stored), and a busy timeout, so several processes on one
//! host share the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::Notify;

use crate::call::Call;
use crate::codec::Format;
use crate::describe::MethodKind;
use crate::queued::{self, decode_state, encode_state, CallState};
use crate::{Metadata, RpcError};

/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    service    TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    oneway     INTEGER NOT NULL,
    format     INTEGER NOT NULL,
    signature  INTEGER NOT NULL,
    metadata   BLOB    NOT NULL,
    body       BLOB    NOT NULL,
    expires_ms INTEGER,
    stored_ms  INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    visible_ms INTEGER NOT NULL,
    last_error BLOB,
    outcome    BLOB,
    done_ms    INTEGER
);
CREATE INDEX IF NOT EXISTS calls_ready ON calls (service, visible_ms) WHERE outcome IS NULL;
CREATE INDEX IF NOT EXISTS calls_done ON calls (done_ms) WHERE outcome IS NOT NULL;
";

/// One open connection to a queue file, and the in-process wake-up of its path.
pub(crate) struct Store {
    connection: Mutex<Connection>,
    path: PathBuf,
    /// Woken on every write by this process to the same file (any `Store` of the path): waiters
    /// in this process need not poll. Other processes' writes are seen by polling.
    pub(crate) changed: Arc<Notify>,
}

/// A call a worker took: its fields, and how many times it has been delivered, this one
/// included.
pub(crate) struct Taken {
    pub(crate) id: String,
    pub(crate) call: Call,
    pub(crate) attempts: u32,
    /// The absolute deadline has passed: the call must not run.
    pub(crate) expired: bool,
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
        .unwrap_or(i64::MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn error(path: &Path, what: &str, e: &rusqlite::Error) -> RpcError {
    RpcError::Io(Arc::new(std::io::Error::other(format!("{what} in the queue file {}: {e}", path.display()))))
}

/// The wake-up shared by every `Store` of one path in this process.
fn notifier(path: &Path) -> Arc<Notify> {
    static ALL: OnceLock<Mutex<HashMap<PathBuf, Arc<Notify>>>> = OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(all.entry(path.to_owned()).or_default())
}

impl Store {
    /// Opens (creating when missing) the queue file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Store, RpcError> {
        let fail = |what: &str, e: rusqlite::Error| error(path, what, &e);
        let connection = Connection::open(path).map_err(|e| fail("opening", e))?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail("setting the busy timeout", e))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| fail("turning on the WAL journal", e))?;
        connection.pragma_update(None, "synchronous", "FULL").map_err(|e| fail("setting synchronous", e))?;
        connection.execute_batch(SCHEMA).map_err(|e| fail("creating the table", e))?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(Store { connection: Mutex::new(connection), changed: notifier(&canonical), path: canonical })
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, RpcError> {
        let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut connection).map_err(|e| error(&self.path, what, &e))
    }

    /// Stores `call` under `id` unless the id is already there (pending or done): one id runs
    /// once. Returns once the row is committed.
    pub(crate) fn submit(&self, call: &Call, id: &str) -> Result<(), RpcError> {
        let metadata: Vec<(&str, &str)> = call.metadata.iter().collect();
        let metadata = postcard::to_stdvec(&metadata).map_err(|e| RpcError::Encode(e.to_string()))?;
        let expires = call.deadline.map(|d| i64::try_from(queued::expiry_unix_ms(d)).unwrap_or(i64::MAX));
        let now = now_ms();
        self.with("storing the call", |c| {
            c.execute(
                "INSERT INTO calls (id, service, method, oneway, format, signature, metadata, body, \
                 expires_ms, stored_ms, visible_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) \
                 ON CONFLICT (id) DO NOTHING",
                params![
                    id,
                    call.service.as_ref(),
                    call.method.as_ref(),
                    call.kind == MethodKind::Oneway,
                    u8::from(call.format == Format::Json),
                    call.signature as i64,
                    metadata,
                    call.body.as_ref(),
                    expires,
                    now,
                ],
            )
        })?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// The call's state: pending, its outcome, or expired (never stored, or its outcome is
    /// older than `retention`).
    pub(crate) fn fetch(&self, id: &str, retention: Duration) -> Result<CallState, RpcError> {
        let row: Option<(Option<Vec<u8>>, Option<i64>)> = self.with("reading the result", |c| {
            c.query_row("SELECT outcome, done_ms FROM calls WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })?;
        Ok(match row {
            None => CallState::Expired,
            Some((None, _)) => CallState::Pending,
            Some((Some(_), Some(done))) if done.saturating_add(ms(retention)) <= now_ms() => {
                CallState::Expired
            }
            Some((Some(outcome), _)) => decode_state(&outcome),
        })
    }

    /// Takes the next call of `services` that is due, leasing it for `ack_wait`: another worker
    /// takes it only after that. A call delivered `max_attempts` times whose worker never
    /// finished it (killed, or stuck past the ack wait) is dead-lettered here instead.
    pub(crate) fn take(
        &self,
        services: &[&str],
        ack_wait: Duration,
        max_attempts: u32,
    ) -> Result<Option<Taken>, RpcError> {
        let placeholders = vec!["?"; services.len()].join(",");
        let select = format!(
            "SELECT id, service, method, oneway, format, signature, metadata, body, expires_ms, attempts, last_error \
             FROM calls WHERE outcome IS NULL AND visible_ms <= ? AND service IN ({placeholders}) \
             ORDER BY visible_ms, seq LIMIT 1"
        );
        let taken = self.with("taking a call", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken = loop {
                let now = now_ms();
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&now];
                values.extend(services.iter().map(|s| s as &dyn rusqlite::ToSql));
                // A row this version cannot read (written by hand or by something else) must not
                // stall every call behind it: it is taken out as a dead letter saying why.
                let row = tx
                    .query_row(&select, values.as_slice(), |r| {
                        let id: rusqlite::types::Value = r.get(0)?;
                        let row = (|| -> rusqlite::Result<Row> {
                            Ok(Row {
                                id: r.get(0)?,
                                service: r.get(1)?,
                                method: r.get(2)?,
                                oneway: r.get(3)?,
                                json: r.get::<_, u8>(4)? == 1,
                                signature: r.get(5)?,
                                metadata: r.get(6)?,
                                body: r.get(7)?,
                                expires_ms: r.get(8)?,
                                attempts: r.get(9)?,
                                last_error: r.get(10)?,
                            })
                        })();
                        Ok((id, row))
                    })
                    .optional()?;
                let Some((id, row)) = row else { break None };
                let row: Row = match row {
                    Ok(row) => row,
                    Err(e) => {
                        let error = RpcError::Decode(format!("the stored call cannot be read: {e}"));
                        let dead = encode_state(&CallState::DeadLetter { attempts: 0, error });
                        tx.execute(
                            "UPDATE calls SET outcome = ?2, done_ms = ?3 WHERE id = ?1",
                            params![id, dead.as_ref(), now],
                        )?;
                        continue;
                    }
                };
                if row.attempts >= max_attempts {
                    let error = row.last_error.as_deref().map(decode_state).and_then(|s| match s {
                        CallState::Done(Err(e)) => Some(e),
                        _ => None,
                    });
                    let error = error.unwrap_or_else(|| {
                        RpcError::Cancelled(
                            "the worker running the call stopped before finishing it (killed, or past the ack wait)"
                                .into(),
                        )
                    });
                    let dead = encode_state(&CallState::DeadLetter { attempts: row.attempts, error });
                    tx.execute(
                        "UPDATE calls SET outcome = ?2, done_ms = ?3 WHERE id = ?1",
                        params![row.id, dead.as_ref(), now],
                    )?;
                    continue;
                }
                tx.execute(
                    "UPDATE calls SET attempts = attempts + 1, visible_ms = ?2 WHERE id = ?1",
                    params![row.id, now.saturating_add(ms(ack_wait))],
                )?;
                break Some(row);
            };
            tx.commit()?;
            Ok(taken)
        })?;
        Ok(taken.map(Row::into_taken))
    }

    /// Stores the outcome of a taken call (the ack: one transaction, so an outcome is stored
    /// exactly when the call is done). A call someone else finished first keeps its outcome.
    pub(crate) fn finish(&self, id: &str, state: &CallState) -> Result<(), RpcError> {
        let outcome = encode_state(state);
        self.with("storing the outcome", |c| {
            c.execute(
                "UPDATE calls SET outcome = ?2, done_ms = ?3 WHERE id = ?1 AND outcome IS NULL",
                params![id, outcome.as_ref(), now_ms()],
            )
        })?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// Puts a taken call back to be delivered again after `delay`, remembering why it failed.
    pub(crate) fn retry(&self, id: &str, delay: Duration, error: &RpcError) -> Result<(), RpcError> {
        let error = encode_state(&CallState::Done(Err(error.clone())));
        self.with("putting the call back", |c| {
            c.execute(
                "UPDATE calls SET visible_ms = ?2, last_error = ?3 WHERE id = ?1 AND outcome IS NULL",
                params![id, now_ms().saturating_add(ms(delay)), error.as_ref()],
            )
        })?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// Removes outcomes older than `retention`.
    pub(crate) fn purge(&self, retention: Duration) -> Result<usize, RpcError> {
        self.with("removing old outcomes", |c| {
            c.execute(
                "DELETE FROM calls WHERE outcome IS NOT NULL AND done_ms <= ?1",
                [now_ms().saturating_sub(ms(retention))],
            )
        })
    }
}

struct Row {
    id: String,
    service: String,
    method: String,
    oneway: bool,
    json: bool,
    signature: i64,
    metadata: Vec<u8>,
    body: Vec<u8>,
    expires_ms: Option<i64>,
    attempts: u32,
    last_error: Option<Vec<u8>>,
}

impl Row {
    fn into_taken(self) -> Taken {
        let expires = self.expires_ms.map(|ms| u64::try_from(ms).unwrap_or(0));
        let deadline = expires.and_then(queued::deadline_of);
        let mut metadata = Metadata::new();
        // Written by `submit`; a row that does not decode runs with no metadata.
        for (key, value) in postcard::from_bytes::<Vec<(String, String)>>(&self.metadata).unwrap_or_default()
        {
            metadata.insert(key, value);
        }
        Taken {
            attempts: self.attempts + 1,
            expired: expires.is_some() && deadline.is_none(),
            call: Call {
                service: self.service.into(),
                method: self.method.into(),
                kind: if self.oneway { MethodKind::Oneway } else { MethodKind::Unary },
                format: if self.json { Format::Json } else { Format::Postcard },
                signature: self.signature as u64,
                deadline,
                metadata,
                body: Bytes::from(self.body),
                // A client-side mark for retry policies; a worker has no use for it.
                idempotent: false,
            },
            id: self.id,
        }
    }
}
