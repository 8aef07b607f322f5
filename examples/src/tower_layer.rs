//! A tower [`Layer`] that picks an upstream for each request by consistent hashing of a
//! request header, with lb-core: the way a tower or axum stack embeds the library.
//!
//! The chosen upstream travels to the inner service in the request's extensions as
//! [`Picked`]; a request whose key's candidates are all out of rotation carries none,
//! and the inner service answers it (a 503, say). The [`NodeMap`] is shared: change
//! membership, weights or health through the same `Arc<RwLock<..>>` and the next
//! request sees it.
//!
//! ```
//! use std::sync::{Arc, RwLock};
//! use hyper::header::HeaderName;
//! use lb_core::{HashRing, NodeId, NodeMap};
//! use lb_examples::tower_layer::ConsistentHashLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut map = NodeMap::new(HashRing::new())?;
//! map.insert(NodeId::new("api1")?, 1, "10.0.0.1:8080".to_string())?;
//! map.insert(NodeId::new("api2")?, 1, "10.0.0.2:8080".to_string())?;
//! let layer = ConsistentHashLayer::new(
//!     Arc::new(RwLock::new(map)),
//!     HeaderName::from_static("x-key"),
//!     |_addr: &String| true, // every upstream in rotation
//! );
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use hyper::Request;
use hyper::header::HeaderName;
use lb_core::{NodeId, NodeMap};
use tower_layer::Layer;
use tower_service::Service;

/// The upstream chosen for a request: its node and its value from the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked<T> {
    /// The node's id.
    pub node: NodeId,
    /// The node's value (an address, a client).
    pub upstream: T,
}

/// Wraps a service in [`ConsistentHash`].
#[derive(Debug)]
pub struct ConsistentHashLayer<T> {
    upstreams: Arc<RwLock<NodeMap<T>>>,
    key: HeaderName,
    in_rotation: fn(&T) -> bool,
}

impl<T> Clone for ConsistentHashLayer<T> {
    fn clone(&self) -> Self {
        Self {
            upstreams: Arc::clone(&self.upstreams),
            key: self.key.clone(),
            in_rotation: self.in_rotation,
        }
    }
}

impl<T> ConsistentHashLayer<T> {
    /// Picks among `upstreams` by the value of header `key` (the path when absent),
    /// skipping upstreams for which `in_rotation` is false.
    pub fn new(
        upstreams: Arc<RwLock<NodeMap<T>>>,
        key: HeaderName,
        in_rotation: fn(&T) -> bool,
    ) -> Self {
        Self {
            upstreams,
            key,
            in_rotation,
        }
    }
}

impl<S, T> Layer<S> for ConsistentHashLayer<T> {
    type Service = ConsistentHash<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsistentHash {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ConsistentHashLayer`] makes: inserts [`Picked`] into each request.
#[derive(Debug, Clone)]
pub struct ConsistentHash<S, T> {
    inner: S,
    layer: ConsistentHashLayer<T>,
}

impl<S, T> ConsistentHash<S, T>
where
    T: Clone,
{
    /// The first candidate of `key` in rotation.
    fn pick(&self, key: &[u8]) -> Option<Picked<T>> {
        let map = self.layer.upstreams.read().ok()?;
        map.candidates(key)
            .find(|(_, upstream)| (self.layer.in_rotation)(upstream))
            .map(|(node, upstream)| Picked {
                node: node.id().clone(),
                upstream: upstream.clone(),
            })
    }
}

impl<S, T, B> Service<Request<B>> for ConsistentHash<S, T>
where
    S: Service<Request<B>>,
    T: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let picked = match req.headers().get(&self.layer.key) {
            Some(value) => self.pick(value.as_bytes()),
            None => self.pick(req.uri().path().as_bytes()),
        };
        if let Some(picked) = picked {
            req.extensions_mut().insert(picked);
        }
        self.inner.call(req)
    }
}
