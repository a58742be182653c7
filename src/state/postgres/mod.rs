//! The shared store: the journal, leases and outbox in a PostgreSQL database that several hosts
//! use at once (`--state-url`). Time comes from the server's clock (`now()`), so clock skew
//! between hosts cannot expire a live lease or keep a dead one. One thread of the process owns
//! the connection and runs every call in the order it was made (so a write queued without
//! waiting still lands before the next one); a connection that broke is opened again on the next
//! call, and a call fails while the server cannot be reached.

mod connect;
mod journal;
mod outbox;
mod schema;

use std::sync::Arc;
use std::sync::mpsc;

use postgres::Client;

use super::error::{Result, StateError};
use super::holder;
use super::location;

/// The open store; cheap to clone.
#[derive(Clone)]
pub(super) struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<Job>,
    shown: String,
    /// Who holds the leases this process takes (see [`holder`]).
    pid: u32,
    host: String,
}

/// One call, run on the connection's thread.
type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// The connection's thread's side: the client, opened again when it broke.
struct Conn {
    client: Option<Client>,
    url: String,
    shown: String,
}

impl Conn {
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let c = connect::open(&self.url).map_err(|why| server(&self.shown, why))?;
            tracing::info!("connected to the state database {}", self.shown);
            self.client = Some(c);
        }
        Ok(self.client.as_mut().expect("connected above"))
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

fn server(shown: &str, why: String) -> StateError {
    StateError::Server {
        url: shown.to_string(),
        why,
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
        let (jobs, rx) = mpsc::channel::<Job>();
        let mut conn = Conn {
            client: Some(client),
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
        let pid = std::process::id();
        Ok(Postgres {
            inner: Arc::new(Inner {
                jobs,
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

    /// Queues `f` for the connection's thread; `answer` gets its result.
    fn enqueue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &Me) -> Result<T> + Send + 'static,
        answer: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        let me = self.me();
        let job: Job = Box::new(move |conn| answer(conn.client().and_then(|c| f(c, &me))));
        if let Err(mpsc::SendError(job)) = self.inner.jobs.send(job) {
            // The thread is gone (it panicked): the call fails as a lost connection would.
            drop(job);
        }
    }

    /// Runs `f` on the connection, blocking this thread until it is answered.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &Me) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.enqueue(f, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| Err(self.gone()))
    }

    /// Runs `f` on the connection and waits for its answer without blocking the async threads.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &Me) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(f, move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// Queues `f` without waiting: calls made later run after it.
    fn run_soon(&self, f: impl FnOnce(&mut Client, &Me) -> Result<()> + Send + 'static) {
        self.enqueue(f, |r| {
            if let Err(e) = r {
                tracing::warn!("a journal write failed: {e}");
            }
        });
    }

    /// Waits until every call queued so far is answered.
    pub(super) async fn written(&self) -> Result<()> {
        self.run(|_, _| Ok(())).await
    }

    fn gone(&self) -> StateError {
        server(&self.inner.shown, "its connection thread stopped".into())
    }
}
