//! The calls of files in flight (a new file's claim, the writes to the rows this run holds) on
//! one connection that the run's own async runtime drives. Calls from every file are pipelined
//! on it (each is sent without waiting for the answers to those before it) and no thread stands
//! between a file and the server, so a call costs about one round trip however many files are
//! in flight. Calls on one row still run in the order they were made: each waits for the row's
//! previous call, one queued without waiting included.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::super::error::{Result, StateError};
use super::connect::{self, server};

pub(super) struct Pipe {
    url: String,
    shown: String,
    /// The connection, opened on the first call and again after it closed.
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
    /// Each row's latest call, which the row's next call is sent after.
    tails: Mutex<HashMap<i64, Tail>>,
}

/// Whether a row's latest call was sent (the sender is dropped if it never will be).
type Tail = tokio::sync::watch::Receiver<bool>;

/// A parameter a call owns (it may run after its caller moved on).
pub(super) type Param = Box<dyn ToSql + Send + Sync>;

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
        live.client
            .query(&st, params)
            .await
            .map_err(|e| self.err(e))
    }

    fn err(&self, e: tokio_postgres::Error) -> StateError {
        server(&self.shown, connect::why(&e))
    }

    /// Runs `sql` on row `id` with `params`, sent after the row's earlier calls: the server
    /// runs a connection's requests in the order they are sent, so a call need not wait for
    /// the answer to the one before it, only for it to be sent. How many rows it changed.
    pub(super) fn in_order(
        self: &Arc<Self>,
        id: i64,
        sql: String,
        params: Vec<Param>,
    ) -> impl Future<Output = Result<u64>> + Send + 'static {
        let (sent, rx) = tokio::sync::watch::channel(false);
        let before = {
            let mut tails = lock(&self.tails);
            if tails.len() >= TAILS_KEPT {
                // A call sent, or gone without sending, holds back nothing.
                tails.retain(|_, t| !*t.borrow() && t.has_changed().is_ok());
            }
            tails.insert(id, rx)
        };
        let this = self.clone();
        async move {
            if let Some(mut before) = before {
                // An error: that call ended without sending; nothing to wait for.
                let _ = before.wait_for(|s| *s).await;
            }
            let (live, st) = this.prepared(&sql).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as _).collect();
            let mut call = std::pin::pin!(live.client.execute(&st, &refs));
            // The driver sends a request when its future is first polled.
            let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
            sent.send_replace(true);
            match first {
                Poll::Ready(r) => r,
                Poll::Pending => call.await,
            }
            .map_err(|e| this.err(e))
        }
    }

    /// Waits until every call made so far is answered: each row's latest is sent, and then a
    /// call sent after them all is answered (the server answers in the order it was sent).
    pub(super) async fn settled(&self) -> Result<()> {
        let tails: Vec<Tail> = lock(&self.tails).values().cloned().collect();
        for mut t in tails {
            let _ = t.wait_for(|s| *s).await;
        }
        let live = self.live.lock().await.clone();
        if let Some(live) = live.filter(|l| !l.client.is_closed()) {
            live.client
                .simple_query("")
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
