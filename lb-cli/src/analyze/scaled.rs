//! Changing the daemon's replica count for an online analysis, and putting it back.

use super::AnalyzeError;
use crate::client::{AdminClient, ClientError};

/// The daemon's replicas as they were before an analysis scaled them: [`Scaled::to`]
/// changes the count, [`Scaled::restore`] (or drop, as a fallback) puts the same names
/// back.
///
/// Scaling down removes replicas the analysis added first, then the original ones from
/// the end of the list; restoring removes the added ones and re-adds the removed
/// originals by name, so they return to the same ring points. A removed original comes
/// back through the daemon's runtime (a child process or container): a replica that had
/// a fixed address (externally managed) does not get that address back.
#[derive(Debug)]
pub struct Scaled<'a> {
    client: &'a AdminClient,
    original: Vec<String>,
    restored: bool,
}

impl<'a> Scaled<'a> {
    /// Remembers the daemon's current replicas.
    ///
    /// # Errors
    /// The daemon cannot be asked.
    pub fn new(client: &'a AdminClient) -> Result<Self, AnalyzeError> {
        let original = client.replicas().map_err(daemon("GET /rep"))?.names;
        Ok(Self {
            client,
            original,
            restored: false,
        })
    }

    fn names(&self) -> Result<Vec<String>, AnalyzeError> {
        Ok(self.client.replicas().map_err(daemon("GET /rep"))?.names)
    }

    /// Adds or removes replicas until there are `n`.
    ///
    /// # Errors
    /// The daemon refused (`admin.max_per_call`, a token) or cannot be reached.
    pub fn to(&mut self, n: usize) -> Result<(), AnalyzeError> {
        self.restored = false;
        let have = self.names()?;
        if n > have.len() {
            return self
                .client
                .add(n - have.len(), &[], &[])
                .map(|_| ())
                .map_err(daemon("POST /add"));
        }
        let surplus = have.len() - n;
        if surplus == 0 {
            return Ok(());
        }
        let (added, kept): (Vec<&String>, Vec<&String>) =
            have.iter().partition(|name| !self.original.contains(name));
        let victims: Vec<String> = added
            .into_iter()
            .chain(kept.into_iter().rev())
            .take(surplus)
            .cloned()
            .collect();
        self.client
            .remove(victims.len(), &victims)
            .map(|_| ())
            .map_err(daemon("DELETE /rm"))
    }

    /// Puts the original replicas back: removes the ones the analysis added, re-adds the
    /// removed originals by name, and checks the daemon now lists exactly the original
    /// names.
    ///
    /// # Errors
    /// The daemon refused or cannot be reached, or lists other names afterwards; the
    /// message names what differs.
    pub fn restore(&mut self) -> Result<(), AnalyzeError> {
        let have = self.names()?;
        let extra: Vec<String> = have
            .iter()
            .filter(|name| !self.original.contains(name))
            .cloned()
            .collect();
        let missing: Vec<String> = self
            .original
            .iter()
            .filter(|name| !have.contains(name))
            .cloned()
            .collect();
        let want = self.original.len();
        let failed = |call: &'static str| {
            move |source| AnalyzeError::NotRestored {
                want,
                reason: Box::new(daemon(call)(source)),
            }
        };
        if !extra.is_empty() {
            self.client
                .remove(extra.len(), &extra)
                .map_err(failed("DELETE /rm"))?;
        }
        if !missing.is_empty() {
            self.client
                .add(missing.len(), &missing, &[])
                .map_err(failed("POST /add"))?;
        }
        let mut now = self.names()?;
        let mut want = self.original.clone();
        now.sort();
        want.sort();
        if now != want {
            return Err(AnalyzeError::OtherReplicas { now, want });
        }
        self.restored = true;
        Ok(())
    }
}

/// The error of admin call `call` (`"GET /rep"`, ...).
fn daemon(call: &'static str) -> impl Fn(ClientError) -> AnalyzeError {
    move |source| AnalyzeError::Daemon {
        call: call.to_string(),
        source,
    }
}

impl Drop for Scaled<'_> {
    /// Restores on an early return (an error mid-analysis); reports, cannot fail.
    fn drop(&mut self) {
        if !self.restored {
            if let Err(e) = self.restore() {
                eprintln!("lbctl: {e}");
            }
        }
    }
}
