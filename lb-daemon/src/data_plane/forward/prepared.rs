//! The request body, prepared for one or more tries: kept in memory when a second
//! try may need it again (within the retry budget and its read deadline), else
//! streamed to the first try that gets a connection.
//!
//! A body of unknown length bound for an h2c replica is kept too when it has already
//! arrived whole (a unary gRPC call's one message comes with its headers): read without
//! waiting, so a stream the replica refuses can go to the next one. Whatever arrived of
//! a body still streaming goes first when it is streamed.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use crate::data_plane::accounting::{Reservation, RetryBudget};
use crate::data_plane::body::{ClientBody, UploadProgress, UpstreamBody};

use super::ProxySettings;
use super::outcome::ClientFault;

/// The request body, prepared for one or more tries.
pub(super) enum Prepared {
    /// Kept in memory: every try sends it again.
    Kept(Option<Bytes>),
    /// Streamed: the first try that gets a connection takes it.
    Streamed(Option<ClientBody>, Arc<UploadProgress>),
}

impl Prepared {
    pub(super) fn for_try(&mut self) -> Option<UpstreamBody> {
        match self {
            Prepared::Kept(bytes) => Some(UpstreamBody::Fixed(bytes.clone())),
            Prepared::Streamed(body, _) => body.take().map(UpstreamBody::Streamed),
        }
    }

    /// The kept body once more, for a hedge (`None` for a streamed one).
    pub(super) fn again(&self) -> Option<UpstreamBody> {
        match self {
            Prepared::Kept(bytes) => Some(UpstreamBody::Fixed(bytes.clone())),
            Prepared::Streamed(..) => None,
        }
    }

    pub(super) fn progress(&self) -> Option<&UploadProgress> {
        match self {
            Prepared::Kept(_) => None,
            Prepared::Streamed(_, progress) => Some(progress),
        }
    }

    pub(super) fn replayable(&self) -> bool {
        matches!(self, Prepared::Kept(_))
    }

    /// Reads a body that may need a second try into memory (within the retry budget
    /// and `body_read_timeout`), or wraps it for streaming.
    pub(super) async fn prepare(
        retry_budget: &Arc<RetryBudget>,
        body: Incoming,
        settings: &ProxySettings,
        may_retry: bool,
        reservation: &mut Option<Reservation>,
        arrived_whole: bool,
    ) -> Result<Prepared, ClientFault> {
        if body.is_end_stream() {
            return Ok(Prepared::Kept(None));
        }
        if may_retry && arrived_whole && body.size_hint().exact().is_none() {
            return Self::if_arrived(retry_budget, body, settings.retry_body_bytes, reservation);
        }
        let small = body
            .size_hint()
            .exact()
            .and_then(|len| usize::try_from(len).ok())
            .filter(|len| may_retry && *len <= settings.retry_body_bytes);
        if let Some(len) = small {
            if let Some(reserved) = retry_budget.reserve(len) {
                *reservation = Some(reserved);
                return match tokio::time::timeout(settings.body_read_timeout, body.collect()).await
                {
                    Ok(Ok(collected)) => Ok(Prepared::Kept(Some(collected.to_bytes()))),
                    Ok(Err(e)) => Err(ClientFault::BrokenBody(e.to_string())),
                    Err(_) => Err(ClientFault::SlowUpload),
                };
            }
        }
        let (body, progress) = ClientBody::new(body);
        Ok(Prepared::Streamed(Some(body), progress))
    }

    /// The body kept if it is all here already (at most `limit` bytes, within the
    /// retry budget), else streamed, starting with what did arrive.
    fn if_arrived(
        retry_budget: &Arc<RetryBudget>,
        mut body: Incoming,
        limit: usize,
        reservation: &mut Option<Reservation>,
    ) -> Result<Prepared, ClientFault> {
        let mut arrived = BytesMut::new();
        let mut held = None;
        while arrived.len() <= limit {
            match body.frame().now_or_never() {
                Some(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        arrived.extend_from_slice(&data);
                        if body.is_end_stream() {
                            break;
                        }
                    }
                    Err(other) => {
                        held = Some(other); // trailers: the body goes on streaming
                        break;
                    }
                },
                Some(None) => break,
                Some(Some(Err(e))) => return Err(ClientFault::BrokenBody(e.to_string())),
                None => break, // more is on its way: stream it
            }
        }
        let whole = held.is_none() && body.is_end_stream() && arrived.len() <= limit;
        if whole {
            if let Some(reserved) = retry_budget.reserve(arrived.len()) {
                *reservation = Some(reserved);
                return Ok(Prepared::Kept(
                    Some(arrived.freeze()).filter(|b| !b.is_empty()),
                ));
            }
        }
        let (body, progress) = ClientBody::with_arrived(body, arrived.freeze(), held);
        Ok(Prepared::Streamed(Some(body), progress))
    }
}
