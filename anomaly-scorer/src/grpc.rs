//! The `AnomalyScorer` gRPC service, with health and server reflection (so
//! `grpcurl` works without the .proto files).
//!
//! With TLS (`grpc_tls`) a caller needs a client certificate from the CA (or
//! the handshake fails) and an identity with a role in `grpc_roles` (the
//! CLIs and the console): every query only reads, and an identity without a
//! role is PERMISSION_DENIED, counted in
//! `vigil_anomaly_scorer_grpc_denied_total`. Health stays open to any caller
//! that completes the handshake.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use vigil_grpc_auth::{Authorizer, Permission, Transport};
use vigil_proto::v1::anomaly_scorer_server::{AnomalyScorer, AnomalyScorerServer};
use vigil_proto::v1::{
    AnomalyScore, GetScoreRequest, StreamScoresRequest, TopAnomalousReply, TopAnomalousRequest,
};

use crate::metrics;

/// Scores a slow `StreamScores` client may fall behind by before it misses some.
const STREAM_BUFFER: usize = 1024;
/// `TopAnomalous` with limit 0.
const DEFAULT_TOP: usize = 10;

/// The latest score of every container, shared by the consume loop and the
/// gRPC handlers.
pub struct Shared {
    latest: RwLock<HashMap<String, AnomalyScore>>,
    scores: broadcast::Sender<AnomalyScore>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            latest: RwLock::new(HashMap::new()),
            scores: broadcast::channel(STREAM_BUFFER).0,
        }
    }
}

impl Shared {
    pub fn record(&self, score: &AnomalyScore) {
        if let Ok(mut latest) = self.latest.write() {
            latest.insert(score.container_id.clone(), score.clone());
        }
        // No subscriber is not an error.
        let _ = self.scores.send(score.clone());
    }

    fn find(&self, request: &GetScoreRequest) -> Result<AnomalyScore, Status> {
        let latest = self
            .latest
            .read()
            .map_err(|_| Status::internal("score table poisoned"))?;
        if !request.container_id.is_empty() {
            return latest.get(&request.container_id).cloned().ok_or_else(|| {
                Status::not_found(format!("no score for container {:?}", request.container_id))
            });
        }
        if request.pod.is_empty() {
            return Err(Status::invalid_argument(
                "give container_id, or pod (and namespace)",
            ));
        }
        latest
            .values()
            .filter(|s| s.pod == request.pod && s.namespace == request.namespace)
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .cloned()
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no score for pod {:?} in namespace {:?}",
                    request.pod, request.namespace
                ))
            })
    }

    /// The highest latest score of each workload, highest first.
    fn top(&self, limit: usize) -> Result<Vec<AnomalyScore>, Status> {
        let latest = self
            .latest
            .read()
            .map_err(|_| Status::internal("score table poisoned"))?;
        let mut best: HashMap<&str, &AnomalyScore> = HashMap::new();
        for score in latest.values().filter(|s| !s.learning) {
            let entry = best.entry(score.workload.as_str()).or_insert(score);
            if score.score > entry.score {
                *entry = score;
            }
        }
        let mut top: Vec<AnomalyScore> = best.into_values().cloned().collect();
        top.sort_by(|a, b| b.score.total_cmp(&a.score));
        top.truncate(limit);
        Ok(top)
    }
}

pub struct ScorerService {
    shared: Arc<Shared>,
    authorizer: Authorizer,
}

type ScoreStream = Pin<Box<dyn Stream<Item = Result<AnomalyScore, Status>> + Send>>;

#[tonic::async_trait]
impl AnomalyScorer for ScorerService {
    async fn get_score(
        &self,
        request: Request<GetScoreRequest>,
    ) -> Result<Response<AnomalyScore>, Status> {
        self.authorizer
            .authorize(&request, "GetScore", Permission::Read)?;
        self.shared.find(request.get_ref()).map(Response::new)
    }

    async fn top_anomalous(
        &self,
        request: Request<TopAnomalousRequest>,
    ) -> Result<Response<TopAnomalousReply>, Status> {
        self.authorizer
            .authorize(&request, "TopAnomalous", Permission::Read)?;
        let limit = match request.get_ref().limit {
            0 => DEFAULT_TOP,
            n => n as usize,
        };
        Ok(Response::new(TopAnomalousReply {
            scores: self.shared.top(limit)?,
        }))
    }

    type StreamScoresStream = ScoreStream;

    async fn stream_scores(
        &self,
        request: Request<StreamScoresRequest>,
    ) -> Result<Response<Self::StreamScoresStream>, Status> {
        self.authorizer
            .authorize(&request, "StreamScores", Permission::Read)?;
        let min = request.get_ref().min_score;
        if !min.is_finite() {
            return Err(Status::invalid_argument("min_score must be a number"));
        }
        let stream = BroadcastStream::new(self.shared.scores.subscribe()).filter_map(
            move |item| async move {
                match item {
                    Ok(score) if score.score >= min => Some(Ok(score)),
                    Ok(_) => None,
                    Err(_lagged) => {
                        metrics::error("stream_lagged", "grpc");
                        None
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("gRPC TLS: {0}")]
    Tls(#[from] vigil_grpc_auth::TlsError),
    #[error("gRPC configuration: {0}")]
    Config(String),
}

/// The transport `config` asks for; an error if it is invalid (a
/// configuration built without validation).
pub fn transport(config: &crate::Config) -> Result<Transport, GrpcError> {
    let mut problems = vigil_service::Problems::default();
    config
        .grpc_transport(&mut problems)
        .ok_or_else(|| GrpcError::Config(format!("{problems:?}")))
}

/// Serves until `shutdown` over `transport` (mutual TLS with roles, or
/// plaintext); `Config::grpc_transport` says which.
pub async fn serve(
    listener: TcpListener,
    transport: Transport,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), GrpcError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AnomalyScorerServer<ScorerService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = transport.server_tls()? {
        builder = builder.tls_config(tls)?;
    }
    let authorizer = Authorizer::new("anomaly-scorer", &transport);
    builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(AnomalyScorerServer::new(ScorerService {
            shared,
            authorizer,
        }))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}
