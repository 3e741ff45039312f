//! The control API, `vigil.v1.Responder` over gRPC: quarantine and release
//! pods by hand, list what is quarantined. Used by the console gateway and
//! `vigil-responder-cli`. Every call leaves action records like automatic
//! responses do, with `requested_by` naming who asked.
//!
//! With TLS (`grpc_tls`) a caller needs a client certificate from the CA (or
//! the handshake fails) and a role for its identity (`grpc_roles`):
//! operators (the console) may quarantine and release, readers (the CLIs)
//! may list; anything else is PERMISSION_DENIED, counted in
//! `vigil_responder_grpc_denied_total`. `requested_by` is then the identity
//! and the console user it vouches for, never the request body's word
//! (`vigil_grpc_auth::Caller::requested_by`).

use std::{net::SocketAddr, sync::Arc};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};
use vigil_grpc_auth::{Authorizer, Permission, Transport};
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

/// Serves the control API as `config` says: nothing without `grpc.listen`;
/// an invalid transport (the configuration was not validated) is an error.
pub async fn serve_configured(
    config: &crate::Config,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
) -> Result<Option<Serving>, Error> {
    let Some(address) = config.grpc.listen else {
        return Ok(None);
    };
    let mut problems = vigil_service::Problems::default();
    let Some(transport) = config.grpc_transport(&mut problems) else {
        return Err(Error::Grpc {
            address,
            source: std::io::Error::other(format!("{problems:?}")),
        });
    };
    serve(address, transport, responder, shutdown)
        .await
        .map(Some)
}

/// Binds `address` (port 0 picks one) and serves until `shutdown`, over
/// `transport` (mutual TLS, or plaintext where configured).
pub async fn serve(
    address: SocketAddr,
    transport: Transport,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
) -> Result<Serving, Error> {
    let setup_error = |error: vigil_grpc_auth::TlsError| Error::Grpc {
        address,
        source: std::io::Error::other(error),
    };
    let tls = transport.server_tls().map_err(setup_error)?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|error| setup_error(error.into()))?;
    }
    let authorizer = Authorizer::new(crate::SERVICE, &transport);
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
    let router = builder
        .add_service(ResponderServer::new(Api {
            responder,
            authorizer,
        }))
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
    let tls = matches!(transport, Transport::Tls { .. });
    tracing::info!(message = "Serving the control API.", address = %bound, tls);
    Ok(Serving {
        address: bound,
        task,
    })
}

struct Api {
    responder: Arc<Responder>,
    authorizer: Authorizer,
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
        let caller = self
            .authorizer
            .authorize(&request, "Quarantine", Permission::Act)?;
        let (metadata, _, request) = request.into_parts();
        let (namespace, pod) = target(request.target.as_ref())?;
        let by = caller.requested_by(&metadata, &request.requested_by)?;
        let actions = self
            .responder
            .quarantine(
                namespace,
                pod,
                &by,
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
        let caller = self
            .authorizer
            .authorize(&request, "Release", Permission::Act)?;
        let (metadata, _, request) = request.into_parts();
        let (namespace, pod) = target(request.target.as_ref())?;
        let by = caller.requested_by(&metadata, &request.requested_by)?;
        let key = state::pod_key(namespace, pod, "", "");
        let actions = self
            .responder
            .release(&key, &by, request.dry_run)
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
        request: Request<ListQuarantinedRequest>,
    ) -> Result<Response<ListQuarantinedReply>, Status> {
        self.authorizer
            .authorize(&request, "ListQuarantined", Permission::Read)?;
        let pods = self.responder.list().await.map_err(|error| {
            error.count();
            respond_status(&error)
        })?;
        Ok(Response::new(ListQuarantinedReply { pods }))
    }
}
