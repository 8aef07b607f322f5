//! How a request picks its replicas: the table a key is looked up in (ketama ring or
//! Maglev), the bounded-load rule for hot keys, and the policy for requests that carry
//! no key. The whole choice is one [`Routing`] value that travels in every routing
//! snapshot, so the proxy and `/explain` always route alike, and a config reload that
//! changes it applies with the next snapshot.

use std::sync::atomic::Ordering;

use lb_core::{BoundedLoad, Candidates, Node, NodeId};

use crate::data_plane::snapshot::{Snapshot, Upstream};

/// One chosen try: the replica's name and where to reach it.
pub type Target<'a> = (&'a NodeId, &'a Upstream);

/// The table keys are looked up in (`algorithm` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// The ketama ring of `points_per_weight` points per unit of weight (default):
    /// adding or removing a replica moves only its own keys.
    Ring,
    /// A Maglev lookup table of `table_size` slots (a prime; Eisenbud et al., NSDI
    /// 2016): near-perfect balance, a change moves slightly more than its own keys.
    Maglev {
        /// Slots in the table (a prime in `3..=16777213`; default 65,537).
        table_size: u32,
    },
}

impl Algorithm {
    /// The config and `/explain` name: `ring` or `maglev`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::Maglev { .. } => "maglev",
        }
    }
}

/// What a request without a key goes to (`keyless` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyless {
    /// A random key on the table (default): keyless traffic spreads like keyed traffic.
    Random,
    /// Each Up replica in turn, in ring order (by name); a replica of weight `w` takes
    /// `w` turns in a row (nginx's smooth weighted round robin interleaves them
    /// instead; with equal weights the two are the same).
    RoundRobin,
    /// The less loaded (in-flight requests / weight) of two random Up replicas: the
    /// "power of two choices" (Mitzenmacher 2001), as Envoy's `LEAST_REQUEST`.
    LeastRequests,
}

impl Keyless {
    /// The config name: `random`, `round_robin` or `least_requests`.
    pub fn name(self) -> &'static str {
        match self {
            Keyless::Random => "random",
            Keyless::RoundRobin => "round_robin",
            Keyless::LeastRequests => "least_requests",
        }
    }
}

/// The routing choice: table, bounded loads, keyless policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routing {
    /// Ring or Maglev.
    pub algorithm: Algorithm,
    /// Consistent hashing with bounded loads: a replica whose in-flight requests
    /// would exceed `balance_factor × mean` is passed over for the key's next
    /// candidate (HAProxy's `hash-balance-factor`, as a factor: 1.25 = 125). `None`:
    /// off (default).
    pub bounded: Option<BoundedLoad>,
    /// Requests without a key.
    pub keyless: Keyless,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Ring,
            bounded: None,
            keyless: Keyless::Random,
        }
    }
}

impl Snapshot {
    /// The table's candidates for `key` in failover order, Down ones included.
    pub fn candidates(&self, key: &[u8]) -> Candidates<'_> {
        match &self.maglev {
            Some(maglev) => maglev.candidates(key),
            None => self.ring.candidates(key),
        }
    }

    /// The Up replicas for `key` in the table's failover order. Retries walk this.
    pub fn routes<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = Target<'a>> + 'a {
        self.candidates(key).filter_map(|node| self.up(node))
    }

    /// The replica a request with `key` goes to now (bounded loads applied).
    pub fn route(&self, key: &[u8]) -> Option<Target<'_>> {
        let mut one = [None];
        self.choose(Some(key), &mut one);
        one[0]
    }

    /// Fills `out` with the tries of a request with `key` (`None`: the request has
    /// none): the first choice, then distinct fallbacks. Returns how many were set.
    pub fn choose<'a>(&'a self, key: Option<&[u8]>, out: &mut [Option<Target<'a>>]) -> usize {
        match (key, self.routing.keyless) {
            (Some(key), _) => self.choose_keyed(key, out),
            (None, Keyless::Random) => {
                let random = fastrand::u128(..).to_le_bytes();
                self.choose_keyed(&random, out)
            }
            (None, Keyless::RoundRobin) => {
                let turn = self.rotation.fetch_add(1, Ordering::Relaxed);
                let weight: u64 = self.in_rotation().map(|(_, _, w)| u64::from(w)).sum();
                if weight == 0 {
                    return 0;
                }
                let mut left = turn as u64 % weight;
                let first = self
                    .in_rotation()
                    .position(|(_, _, w)| {
                        let here = left < u64::from(w);
                        left = left.saturating_sub(u64::from(w));
                        here
                    })
                    .unwrap_or(0);
                self.fill_from(first, out)
            }
            (None, Keyless::LeastRequests) => {
                let count = self.in_rotation().count();
                if count == 0 {
                    return 0;
                }
                let a = fastrand::usize(..count);
                let b = (a + 1 + fastrand::usize(..count.max(2) - 1)) % count;
                let load = |i: usize| {
                    self.in_rotation()
                        .nth(i)
                        .map_or((u64::MAX, 1), |(_, up, w)| {
                            (up.inflight.load(Ordering::Relaxed) as u64, u64::from(w))
                        })
                };
                let ((la, wa), (lb, wb)) = (load(a), load(b));
                // la / wa <= lb / wb, without division.
                let first = if u128::from(la) * u128::from(wb) <= u128::from(lb) * u128::from(wa) {
                    a
                } else {
                    b
                };
                self.fill_from(first, out)
            }
        }
    }

    /// Up replicas of weight > 0, in ring order (by name), with their weights.
    fn in_rotation(&self) -> impl Iterator<Item = (&NodeId, &Upstream, u32)> + Clone + '_ {
        self.ring
            .nodes()
            .iter()
            .filter(|node| node.weight() > 0)
            .filter_map(|node| self.up(node).map(|(id, up)| (id, up, node.weight())))
    }

    /// `out` from the `first`-th replica in rotation, then the ones after it, cyclically.
    fn fill_from<'a>(&'a self, first: usize, out: &mut [Option<Target<'a>>]) -> usize {
        let count = self.in_rotation().count();
        let mut n = 0;
        let order = self.in_rotation().cycle().skip(first).take(count);
        for (slot, (id, up, _)) in out.iter_mut().zip(order) {
            *slot = Some((id, up));
            n += 1;
        }
        n
    }

    /// The key's Up candidates in table order; with bounded loads, from the first one
    /// below its capacity on, then the full ones that came before it.
    fn choose_keyed<'a>(&'a self, key: &[u8], out: &mut [Option<Target<'a>>]) -> usize {
        let chosen = self
            .routing
            .bounded
            .and_then(|rule| self.bounded(rule, key))
            .map(|(id, _)| id);
        let is_chosen = |id: &NodeId| chosen.is_none_or(|c| c == id);
        let from_chosen = self.routes(key).skip_while(|(id, _)| !is_chosen(id));
        // The second walk (and its key hash) only when bounded loads passed over the
        // key's first candidates.
        let full_before = chosen
            .into_iter()
            .flat_map(|c| self.routes(key).take_while(move |(id, _)| *id != c));
        let order = from_chosen.chain(full_before);
        let mut n = 0;
        for (slot, target) in out.iter_mut().zip(order) {
            *slot = Some(target);
            n += 1;
        }
        n
    }

    /// The first Up candidate of `key` whose in-flight requests are below its
    /// bounded-load capacity.
    fn bounded(&self, rule: BoundedLoad, key: &[u8]) -> Option<Target<'_>> {
        let (load, weight) = self
            .in_rotation()
            .fold((0u64, 0u64), |(l, w), (_, up, weight)| {
                (
                    l + up.inflight.load(Ordering::Relaxed) as u64,
                    w + u64::from(weight),
                )
            });
        let in_flight = |node: &Node| {
            self.up(node)
                .map(|(_, up)| up.inflight.load(Ordering::Relaxed) as u64)
        };
        let id = match &self.maglev {
            Some(maglev) => rule.select(maglev.as_ref(), key, load, weight, in_flight),
            None => rule.select(self.ring.as_ref(), key, load, weight, in_flight),
        }?;
        self.upstreams.get_key_value(id).filter(|(_, up)| up.up)
    }

    /// The node's upstream if it takes requests: in rotation, and not suspected of
    /// making no progress, or due for its half-open trial (spent only by the request
    /// that is sent to it: `Progress::claim`).
    fn up<'a>(&'a self, node: &'a Node) -> Option<Target<'a>> {
        match self.upstreams.get(node.id()) {
            Some(upstream) if upstream.up && upstream.progress.admits() => {
                Some((node.id(), upstream))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
