//! The control API, `vigil.v1.Responder` over gRPC: quarantine and release
//! pods by hand, list what is quarantined. Used by the console gateway and
//! `vigil-responder-cli`. Every call leaves action records like automatic
//! responses do, with `requested_by` naming who asked.

use std::{net::SocketAddr, sync::Arc};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};
use vigil_proto::v1::{
    ListQuarantinedReply, ListQuarantinedRequest, PodRef, QuarantineReply, QuarantineRequest,
    ReleaseReply, ReleaseRequest,
    responder_server::{Responder as ResponderApi, ResponderServer},
};

use crate::{Error, ManualError, RespondError, Responder, state};

/// The running server.
pub struct Serving {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Serving {
    /// Waits for the server to finish after shutdown.
    pub async fn stopped(self) {
        if let Err(error) = self.task.await {
            tracing::warn!(message = "gRPC server task failed.", %error);
        }
    }
}

/// Binds `address` (port 0 picks one) and serves until `shutdown`.
pub async fn serve(
    address: SocketAddr,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
) -> Result<Serving, Error> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Grpc { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Grpc { address, source })?;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| Error::Grpc {
            address,
            source: std::io::Error::other(error),
        })?;
    let router = tonic::transport::Server::builder()
        .add_service(ResponderServer::new(Api { responder }))
        .add_service(reflection);
    let task = tokio::spawn(async move {
        let incoming = TcpIncoming::from(listener);
        if let Err(error) = router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
        {
            tracing::error!(message = "gRPC server stopped.", %error);
        }
    });
    tracing::info!(message = "Serving the control API.", address = %bound);
    Ok(Serving {
        address: bound,
        task,
    })
}

struct Api {
    responder: Arc<Responder>,
}

fn target(target: Option<&PodRef>) -> Result<(&str, &str), Status> {
    match target {
        Some(t) if !t.namespace.trim().is_empty() && !t.pod.trim().is_empty() => {
            Ok((&t.namespace, &t.pod))
        }
        _ => Err(Status::invalid_argument(
            "target: namespace and pod are both required",
        )),
    }
}

fn requester(requested_by: &str) -> Result<&str, Status> {
    if requested_by.trim().is_empty() {
        return Err(Status::invalid_argument(
            "requested_by: say who asks, it goes into the audit records",
        ));
    }
    Ok(requested_by)
}

/// The caller's answer for a manual request that was not carried out.
fn manual_status(error: ManualError) -> Status {
    error.count();
    match &error {
        ManualError::NotHere { .. } => Status::failed_precondition(error.to_string()),
        ManualError::RateLimited { .. } => Status::resource_exhausted(error.to_string()),
        ManualError::Respond(error) => respond_status(error),
    }
}

fn respond_status(error: &RespondError) -> Status {
    if error.retryable() {
        Status::unavailable(error.to_string())
    } else {
        Status::internal(error.to_string())
    }
}

#[tonic::async_trait]
impl ResponderApi for Api {
    async fn quarantine(
        &self,
        request: Request<QuarantineRequest>,
    ) -> Result<Response<QuarantineReply>, Status> {
        let request = request.into_inner();
        let (namespace, pod) = target(request.target.as_ref())?;
        let by = requester(&request.requested_by)?;
        let actions = self
            .responder
            .quarantine(
                namespace,
                pod,
                by,
                &request.reason,
                &request.finding_id,
                request.dry_run,
            )
            .await
            .map_err(manual_status)?;
        Ok(Response::new(QuarantineReply { actions }))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseReply>, Status> {
        let request = request.into_inner();
        let (namespace, pod) = target(request.target.as_ref())?;
        let by = requester(&request.requested_by)?;
        let key = state::pod_key(namespace, pod, "", "");
        let actions = self
            .responder
            .release(&key, by, request.dry_run)
            .await
            .map_err(manual_status)?;
        if actions.is_empty() {
            return Err(Status::not_found(format!(
                "{namespace}/{pod} is not quarantined (or not by what this responder can undo)"
            )));
        }
        Ok(Response::new(ReleaseReply { actions }))
    }

    async fn list_quarantined(
        &self,
        _request: Request<ListQuarantinedRequest>,
    ) -> Result<Response<ListQuarantinedReply>, Status> {
        let pods = self.responder.list().await.map_err(|error| {
            error.count();
            respond_status(&error)
        })?;
        Ok(Response::new(ListQuarantinedReply { pods }))
    }
}
