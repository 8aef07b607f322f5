//! The request body, prepared for one or more tries: kept in memory when a second
//! try may need it again (within the retry budget and its read deadline), else
//! streamed to the first try that gets a connection.

use std::sync::Arc;

use bytes::Bytes;
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
    ) -> Result<Prepared, ClientFault> {
        if body.is_end_stream() {
            return Ok(Prepared::Kept(None));
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
}
