//! Changing the daemon's replica count for an online analysis, and putting it back.

use crate::client::AdminClient;

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
    pub fn new(client: &'a AdminClient) -> Result<Self, String> {
        let original = client.replicas().map_err(|e| e.to_string())?.names;
        Ok(Self {
            client,
            original,
            restored: false,
        })
    }

    fn names(&self) -> Result<Vec<String>, String> {
        Ok(self.client.replicas().map_err(|e| e.to_string())?.names)
    }

    /// Adds or removes replicas until there are `n`.
    ///
    /// # Errors
    /// The daemon refused (`admin.max_per_call`, a token) or cannot be reached.
    pub fn to(&mut self, n: usize) -> Result<(), String> {
        self.restored = false;
        let have = self.names()?;
        if n > have.len() {
            return self
                .client
                .add((n - have.len()) as u64, &[])
                .map(|_| ())
                .map_err(|e| e.to_string());
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
            .remove(victims.len() as u64, &victims)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Puts the original replicas back: removes the ones the analysis added, re-adds the
    /// removed originals by name, and checks the daemon now lists exactly the original
    /// names.
    ///
    /// # Errors
    /// The daemon refused or cannot be reached, or lists other names afterwards; the
    /// message names what differs.
    pub fn restore(&mut self) -> Result<(), String> {
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
        let failed = |e: crate::client::ClientError| {
            format!(
                "could not put the daemon back to its {} replicas: {e}",
                self.original.len()
            )
        };
        if !extra.is_empty() {
            self.client
                .remove(extra.len() as u64, &extra)
                .map_err(failed)?;
        }
        if !missing.is_empty() {
            self.client
                .add(missing.len() as u64, &missing)
                .map_err(failed)?;
        }
        let mut now = self.names()?;
        let mut want = self.original.clone();
        now.sort();
        want.sort();
        if now != want {
            return Err(format!(
                "after restoring, the daemon lists {now:?}, not the original {want:?}"
            ));
        }
        self.restored = true;
        Ok(())
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
