//! `vote-server [--id ID] [--port PORT] [--host HOST]`: the seed project's tech-stack
//! voting app, as a replica behind lb-daemon, sharded by key.
//!
//! - `GET /` → the voting page (`index.html`)
//! - `POST /api/vote?option=NAME` with `{"option": "NAME"}` → `200 {"option":..,"votes":N}`
//!   (the count after this vote); 400 for an unknown option or a body that does not
//!   name the same option as the query
//! - `GET /api/votes?option=NAME` → `200 {"option":..,"votes":N,"server":ID}`
//! - `GET /heartbeat` → `200`
//!
//! Options: kubernetes, docker, helm, prometheus. Each replica counts only the votes
//! it receives; the daemon routes by `key = ["query:option"]`, so every vote for and
//! every read of one option reaches the replica that owns that option's key, and the
//! page, which reads each option separately, shows consistent totals however many
//! replicas there are. `ID`, `PORT` and the address come as for `replica-server`.

use lb_examples::ReplicaArgs;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The options on the ballot.
const OPTIONS: [&str; 4] = ["kubernetes", "docker", "helm", "prometheus"];
/// Largest vote body, bytes.
const MAX_BODY: usize = 1024;
/// The page.
const PAGE: &str = include_str!("index.html");

/// The voting app's replica.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    replica: ReplicaArgs,
}

/// This replica's counts, by option.
#[derive(Debug, Default)]
struct Ballot {
    votes: Mutex<HashMap<&'static str, u64>>,
}

impl Ballot {
    fn count(&self, option: &'static str) -> u64 {
        self.lock().get(option).copied().unwrap_or(0)
    }

    fn vote(&self, option: &'static str) -> u64 {
        let mut votes = self.lock();
        let count = votes.entry(option).or_insert(0);
        *count += 1;
        *count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, u64>> {
        self.votes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The option named by `option=` in `query`, if it is on the ballot.
fn option_of(query: Option<&str>) -> Option<&'static str> {
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("option="))?;
    OPTIONS.iter().copied().find(|o| *o == value)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn refused(reason: &str) -> Response<Full<Bytes>> {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "message": format!("<Error> {reason}"), "status": "failure" }),
    )
}

async fn serve(id: Arc<str>, ballot: Arc<Ballot>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let option = option_of(req.uri().query());
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => {
            let mut page = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
            page.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            page
        }
        (&Method::GET, "/heartbeat") => Response::new(Full::new(Bytes::new())),
        (&Method::GET, "/api/votes") => match option {
            Some(option) => json(
                StatusCode::OK,
                serde_json::json!({ "option": option, "votes": ballot.count(option), "server": &*id }),
            ),
            None => refused("name one of kubernetes, docker, helm, prometheus in ?option="),
        },
        (&Method::POST, "/api/vote") => {
            let Some(option) = option else {
                return refused("name one of kubernetes, docker, helm, prometheus in ?option=");
            };
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return refused("the vote body is missing or too large"),
            };
            let named = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["option"].as_str().map(str::to_owned));
            if named.as_deref() != Some(option) {
                return refused("the body's \"option\" must be the query's option");
            }
            json(
                StatusCode::OK,
                serde_json::json!({ "option": option, "votes": ballot.vote(option), "server": &*id }),
            )
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "message": "<Error> no such endpoint", "status": "failure" }),
        ),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Some(listener) = args.replica.listen("vote-server").await else {
        return std::process::ExitCode::from(1);
    };
    let id: Arc<str> = Arc::from(args.replica.id);
    let ballot = Arc::new(Ballot::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (id, ballot) = (Arc::clone(&id), Arc::clone(&ballot));
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (id, ballot) = (Arc::clone(&id), Arc::clone(&ballot));
                async move { Ok::<_, Infallible>(serve(id, ballot, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_query_and_only_from_the_ballot() {
        assert_eq!(option_of(Some("option=helm")), Some("helm"));
        assert_eq!(option_of(Some("x=1&option=docker")), Some("docker"));
        assert_eq!(option_of(Some("option=cobol")), None);
        assert_eq!(option_of(None), None);
        let ballot = Ballot::default();
        assert_eq!(ballot.vote("helm"), 1);
        assert_eq!(ballot.vote("helm"), 2);
        assert_eq!((ballot.count("helm"), ballot.count("docker")), (2, 0));
    }
}
