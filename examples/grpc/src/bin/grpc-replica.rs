//! A gRPC replica for lb-daemon's `upstream.protocol = "h2c"`: the `echo.Echo` service
//! (`Say`, server-streaming `Count`, bidi `Chat`, `SetServing`) and
//! `grpc.health.v1.Health`, over h2c (HTTP/2 without TLS) on `--host:--port`.
//! lb-daemon's process runtime starts it with `SERVER_ID` and `PORT` set.
//!
//! ```text
//! grpc-replica --id server1 --port 50051
//! ```

use std::pin::Pin;
use std::time::Duration;

use clap::Parser;
use lb_examples::ReplicaArgs;
use lb_grpc_example::echo::echo_server::{Echo, EchoServer};
use lb_grpc_example::echo::{
    CountRequest, SayReply, SayRequest, SetServingReply, SetServingRequest,
};
use lb_grpc_example::{COUNT_TRAILER, SERVICE_NAME};
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

#[derive(Debug, Parser)]
#[command(about = "A gRPC echo replica over h2c, with grpc.health.v1")]
struct Args {
    #[command(flatten)]
    replica: ReplicaArgs,
}

/// Replies stream of `Count` and `Chat`.
type Replies = Pin<Box<dyn Stream<Item = Result<SayReply, Status>> + Send>>;

struct EchoReplica {
    id: String,
    health: HealthReporter,
}

impl EchoReplica {
    fn reply(&self, message: String) -> SayReply {
        SayReply {
            message,
            replica: self.id.clone(),
        }
    }
}

#[tonic::async_trait]
impl Echo for EchoReplica {
    async fn say(&self, request: Request<SayRequest>) -> Result<Response<SayReply>, Status> {
        let request = request.into_inner();
        if request.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(request.delay_ms))).await;
        }
        Ok(Response::new(self.reply(request.message)))
    }

    type CountStream = Replies;

    async fn count(
        &self,
        request: Request<CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        let CountRequest { count, interval_ms } = request.into_inner();
        let id = self.id.clone();
        let interval = Duration::from_millis(u64::from(interval_ms));
        let replies = tokio_stream::iter(0..count).then(move |i| {
            let id = id.clone();
            async move {
                if i > 0 {
                    tokio::time::sleep(interval).await;
                }
                Ok(SayReply {
                    message: i.to_string(),
                    replica: id,
                })
            }
        });
        // An `Ok` status with metadata ends the stream: tonic sends it as the trailers.
        let mut trailers = MetadataMap::new();
        trailers.insert(COUNT_TRAILER, MetadataValue::from(count));
        let end = tokio_stream::once(Err(Status::with_metadata(Code::Ok, "", trailers)));
        Ok(Response::new(Box::pin(replies.chain(end))))
    }

    type ChatStream = Replies;

    async fn chat(
        &self,
        request: Request<Streaming<SayRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let id = self.id.clone();
        let replies = request.into_inner().map(move |said| {
            said.map(|said| SayReply {
                message: said.message,
                replica: id.clone(),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn set_serving(
        &self,
        request: Request<SetServingRequest>,
    ) -> Result<Response<SetServingReply>, Status> {
        let status = if request.into_inner().serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health.set_service_status(SERVICE_NAME, status).await;
        self.health.set_service_status("", status).await;
        Ok(Response::new(SetServingReply {}))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;
    let replica = EchoReplica {
        id: args.replica.id.clone(),
        health,
    };
    eprintln!(
        "grpc-replica {} listening on {}",
        args.replica.id,
        args.replica.addr()
    );
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(EchoServer::new(replica))
        .serve(args.replica.addr())
        .await?;
    Ok(())
}
