//! The shared store: the journal, leases and outbox in a PostgreSQL database that several hosts
//! use at once (`--state-url`). Time comes from the server's clock (`now()`), so clock skew
//! between hosts cannot expire a live lease or keep a dead one. The calls of files in flight go
//! over one pipelined connection ([`pipe`]); transactions and the rarer reads go to a few
//! threads that each own a connection and run their calls in the order they were made. Every
//! connection prepares its statements once. A connection that broke is opened again on the next
//! call, and a call fails while the server cannot be reached.

mod connect;
mod journal;
mod outbox;
mod pipe;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use postgres::{Client, Statement};

use super::error::{Result, StateError};
use super::holder;
use super::location;
use connect::server;

/// The open store; cheap to clone.
#[derive(Clone)]
pub(super) struct Postgres {
    inner: Arc<Inner>,
}

/// Connections (and threads) per process for transactions: claims of keys that have rows (a
/// resume, `--force`) of different files run side by side.
const CONNECTIONS: usize = 2;

struct Inner {
    /// One queue per connection's thread.
    jobs: Vec<mpsc::Sender<Job>>,
    /// The connection for the calls of files in flight.
    pipe: Arc<pipe::Pipe>,
    shown: String,
    /// Who holds the leases this process takes (see [`holder`]).
    pid: u32,
    host: String,
}

/// One call, run on the connection's thread.
type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// The connection's thread's side: the client, opened again when it broke.
struct Conn {
    db: Option<Db>,
    url: String,
    shown: String,
}

impl Conn {
    fn db(&mut self) -> Result<&mut Db> {
        if self.db.as_ref().is_none_or(|d| d.client.is_closed()) {
            self.db = None;
            let client = connect::open(&self.url).map_err(|why| server(&self.shown, why))?;
            tracing::info!("connected to the state database {}", self.shown);
            self.db = Some(Db::new(client));
        }
        Ok(self.db.as_mut().expect("connected above"))
    }
}

/// A connection and its prepared statements (a statement prepared per call would cost a round
/// trip more each time).
pub(super) struct Db {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Db {
    fn new(client: Client) -> Db {
        Db {
            client,
            prepared: HashMap::new(),
        }
    }

    /// `sql`, prepared on this connection once.
    fn stmt(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl std::ops::Deref for Db {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Who this process is, for the calls.
pub(super) struct Me {
    pid: u32,
    host: String,
    shown: String,
}

impl Me {
    fn err(&self, e: postgres::Error) -> StateError {
        server(&self.shown, connect::why(&e))
    }

    fn err_text(&self, why: &str) -> StateError {
        server(&self.shown, why.to_string())
    }
}

impl Postgres {
    /// Connects (failing at once when the server cannot be reached) and migrates the schema.
    pub(super) fn connect(url: &str) -> Result<Postgres> {
        let shown = location::shown(url);
        // The driver runs its own runtime, which cannot start on one of tokio's threads.
        let client = std::thread::scope(|s| {
            s.spawn(|| {
                let mut client = connect::open(url).map_err(|why| server(&shown, why))?;
                schema::migrate(&mut client, &shown)?;
                Ok(client)
            })
            .join()
            .unwrap_or_else(|_| Err(server(&shown, "connecting panicked".into())))
        })?;
        // The first connection is open (the server is reachable); the others open on first use
        // (most runs never need them: the calls of files in flight go through the pipe).
        let mut first = Some(Db::new(client));
        let mut jobs = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let (tx, rx) = mpsc::channel::<Job>();
            let mut conn = Conn {
                db: first.take(),
                url: url.to_string(),
                shown: shown.clone(),
            };
            std::thread::Builder::new()
                .name("gcupload-state".into())
                .spawn(move || {
                    for job in rx {
                        job(&mut conn);
                    }
                })
                .map_err(|e| server(&shown, format!("cannot start its thread: {e}")))?;
            jobs.push(tx);
        }
        let pid = std::process::id();
        Ok(Postgres {
            inner: Arc::new(Inner {
                jobs,
                pipe: Arc::new(pipe::Pipe::new(url, &shown)),
                shown,
                pid,
                host: holder::identity(&holder::hostname(), pid),
            }),
        })
    }

    /// Connects and reads the schema version (from a thread of its own, like [`connect`]).
    ///
    /// [`connect`]: Postgres::connect
    pub(super) fn probe(url: &str) -> Result<String> {
        let shown = location::shown(url);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut client = connect::open(url).map_err(|why| server(&shown, why))?;
                let version = schema::version(&mut client).unwrap_or(0);
                let known = schema::KNOWN;
                if version > known {
                    return Err(StateError::TooNew {
                        path: shown.clone().into(),
                        found: version,
                        known,
                    });
                }
                Ok(match version {
                    0 => {
                        format!("connected; no schema yet (the first run creates version {known})")
                    }
                    v if v < known => format!(
                        "connected, schema version {v} (the next run migrates it to {known})"
                    ),
                    v => format!("connected, schema version {v}"),
                })
            })
            .join()
            .unwrap_or_else(|_| Err(server(&shown, "connecting panicked".into())))
        })
    }

    pub(super) fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// Nothing waits on a lock here: a call is answered or fails.
    pub(super) fn hurry(&self) {}

    fn me(&self) -> Me {
        Me {
            pid: self.inner.pid,
            host: self.inner.host.clone(),
            shown: self.inner.shown.clone(),
        }
    }

    /// Queues `f` for the thread of connection `on` (modulo their number); `answer` gets its
    /// result. Calls on one row name the row's id, so they run in order.
    fn enqueue<T: Send + 'static>(
        &self,
        on: u64,
        f: impl FnOnce(&mut Db, &Me) -> Result<T> + Send + 'static,
        answer: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        let me = self.me();
        let job: Job = Box::new(move |conn| answer(conn.db().and_then(|c| f(c, &me))));
        let queue = &self.inner.jobs[(on % CONNECTIONS as u64) as usize];
        if let Err(mpsc::SendError(job)) = queue.send(job) {
            // The thread is gone (it panicked): the call fails as a lost connection would.
            drop(job);
        }
    }

    /// Runs `f` on the first connection, blocking this thread until it is answered.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db, &Me) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.enqueue(0, f, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| Err(self.gone()))
    }

    /// Runs `f` on connection `on` and waits for its answer without blocking the async threads.
    async fn run<T: Send + 'static>(
        &self,
        on: u64,
        f: impl FnOnce(&mut Db, &Me) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(on, f, move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// Queues `f` on connection `on` without waiting: calls made later on it run after it.
    fn run_soon(&self, on: u64, f: impl FnOnce(&mut Db, &Me) -> Result<()> + Send + 'static) {
        self.enqueue(on, f, |r| {
            if let Err(e) = r {
                tracing::warn!("a journal write failed: {e}");
            }
        });
    }

    /// Waits until every call queued so far is answered.
    pub(super) async fn written(&self) -> Result<()> {
        self.inner.pipe.settled().await?;
        for queue in &self.inner.jobs {
            // Not through `enqueue`: a connection nothing was queued on need not be open.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let job: Job = Box::new(move |_| {
                let _ = tx.send(());
            });
            if queue.send(job).is_err() || rx.await.is_err() {
                return Err(self.gone());
            }
        }
        Ok(())
    }

    /// A connection for calls about `text` (a file's key or name): spreads them over all.
    fn spread(text: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    }

    fn gone(&self) -> StateError {
        server(&self.inner.shown, "its connection thread stopped".into())
    }
}
