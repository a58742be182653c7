//! Upload events, waited for without holding the session: the lock is taken only to look at
//! what the socket brought, so the batch's other files go on with their exchanges meanwhile
//! (the transport SDK lets several attachments be in flight on one session).

use std::time::{Duration, Instant};

use super::frames::Frame;
use super::session::Link;
use super::socket::{SocketError, no_answer};
use crate::error::Stage;

impl Link {
    /// The `UploadSuccessEvent` or `UploadFailureEvent` for attachment `id`, within `limit`.
    /// `Closed` when the socket it was awaited on is gone (or was replaced): the event may
    /// have gone to the dropped socket.
    pub(super) async fn await_upload_event(
        &self,
        id: &str,
        limit: Duration,
    ) -> std::result::Result<Frame, SocketError> {
        let stage = Stage::Confirm;
        let deadline = tokio::time::Instant::from(crate::retry::later(Instant::now(), limit));
        let mut generation = None;
        loop {
            // Registered before looking, so a frame that arrives after the look rings it.
            let arrived = self.arrivals.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut slot = self.slot.lock().await;
                let Some(session) = slot.as_mut() else {
                    return Err(SocketError::Closed(stage));
                };
                if *generation.get_or_insert(session.generation) != session.generation {
                    return Err(SocketError::Closed(stage));
                }
                if let Some(found) = session.conn.poll(stage, |f| f.is_upload_event(id)) {
                    return found;
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(no_answer(stage, limit).into());
            }
        }
    }
}
