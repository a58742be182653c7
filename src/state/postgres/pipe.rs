//! The calls of files in flight (a new file's claim, the writes to the rows this run holds) on
//! one connection that the run's own async runtime drives. Calls from every file are pipelined
//! on it (each is sent without waiting for the answers to those before it) and no thread stands
//! between a file and the server, so a call costs about one round trip however many files are
//! in flight. Calls on one row still run in the order they were made: each waits for the row's
//! previous call, one queued without waiting included.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::super::error::{Result, StateError};
use super::{connect, server};

pub(super) struct Pipe {
    url: String,
    shown: String,
    /// The connection, opened on the first call and again after it closed.
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
    /// Each row's latest call, which the row's next call waits for.
    tails: Mutex<HashMap<i64, Tail>>,
}

type Tail = Shared<BoxFuture<'static, ()>>;

/// Above this many rows remembered, those whose calls are all answered are forgotten, so the
/// map holds about the rows in flight, not every row the run touched.
const TAILS_KEPT: usize = 64;

/// An open connection and its statements, each prepared on it once.
struct Live {
    client: Client,
    prepared: Mutex<HashMap<String, Statement>>,
}

/// A lock whose holder panicked is still usable: the maps hold no invariant across entries.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pipe {
    pub(super) fn new(url: &str, shown: &str) -> Pipe {
        Pipe {
            url: url.to_string(),
            shown: shown.to_string(),
            live: tokio::sync::Mutex::new(None),
            tails: Mutex::new(HashMap::new()),
        }
    }

    async fn live(&self) -> Result<Arc<Live>> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref().filter(|l| !l.client.is_closed()) {
            return Ok(l.clone());
        }
        *live = None;
        let client = connect::open_async(&self.url)
            .await
            .map_err(|why| server(&self.shown, why))?;
        tracing::info!("connected to the state database {} (pipelined)", self.shown);
        let l = Arc::new(Live {
            client,
            prepared: Mutex::new(HashMap::new()),
        });
        *live = Some(l.clone());
        Ok(l)
    }

    /// The open connection and `sql` prepared on it (once per connection).
    async fn prepared(&self, sql: &str) -> Result<(Arc<Live>, Statement)> {
        let live = self.live().await?;
        let known = lock(&live.prepared).get(sql).cloned();
        let st = match known {
            Some(st) => st,
            None => {
                let st = live.client.prepare(sql).await.map_err(|e| self.err(e))?;
                lock(&live.prepared).insert(sql.to_string(), st.clone());
                st
            }
        };
        Ok((live, st))
    }

    /// The rows `sql` answers with `params`.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let (live, st) = self.prepared(sql).await?;
        live.client.query(&st, params).await.map_err(|e| self.err(e))
    }

    /// How many rows `sql` changed with `params`.
    pub(super) async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let (live, st) = self.prepared(sql).await?;
        live.client.execute(&st, params).await.map_err(|e| self.err(e))
    }

    fn err(&self, e: tokio_postgres::Error) -> StateError {
        server(&self.shown, connect::why(&e))
    }

    /// Runs `call` on row `id` once the row's earlier calls are answered. It runs even if
    /// whoever made it stops waiting, so the order holds for the calls after it.
    pub(super) fn chain(&self, id: i64, call: impl Future<Output = ()> + Send + 'static) {
        let mut tails = lock(&self.tails);
        let before = tails.remove(&id);
        let this = async move {
            if let Some(before) = before {
                before.await;
            }
            call.await;
        }
        .boxed()
        .shared();
        if tails.len() >= TAILS_KEPT {
            tails.retain(|_, t| t.peek().is_none());
        }
        tails.insert(id, this.clone());
        tokio::spawn(this);
    }

    /// Waits until every call chained so far is answered.
    pub(super) async fn settled(&self) {
        let tails: Vec<Tail> = lock(&self.tails).values().cloned().collect();
        futures_util::future::join_all(tails).await;
    }
}
