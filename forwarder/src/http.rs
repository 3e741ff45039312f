//! Falcosidekick's HTTP input and generic webhooks: one alert per POST.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use vigil_falco::Alert;

use crate::{
    config::OutputConfig,
    output::{BuildError, SendError},
};

pub struct HttpOutput {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    /// The URL without its query, which may hold a token.
    target: String,
    timeout_ms: u64,
}

impl HttpOutput {
    pub fn new(config: &OutputConfig) -> Result<Self, BuildError> {
        let error = |detail: String| BuildError {
            name: config.name.clone(),
            detail,
        };
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| error(format!("url {:?}: {e}", config.url)))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("vigil-forwarder/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &config.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| error(format!("header {name:?}: {e}")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|e| error(format!("header {name}: {e}")))?;
            headers.insert(name, value);
        }
        let connector = connector(uri.scheme_str() == Some("https")).map_err(error)?;
        let target = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path()
        );
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri,
            headers,
            target,
            timeout_ms: config.timeout_ms,
        })
    }

    pub async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        let timeout = std::time::Duration::from_millis(self.timeout_ms);
        match tokio::time::timeout(timeout, self.post(alert)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout {
                target: self.target.clone(),
                timeout_ms: self.timeout_ms,
            }),
        }
    }

    async fn post(&self, alert: &Alert) -> Result<(), SendError> {
        let mut request = Request::post(self.uri.clone())
            .body(Full::new(Bytes::from(alert.to_json())))
            .map_err(|e| self.connect_error(e))?;
        request.headers_mut().extend(self.headers.clone());
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| self.connect_error(e))?;
        let status = response.status();
        // Read the answer to its end so the connection can be reused.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError::Status {
                target: self.target.clone(),
                status: status.as_u16(),
            })
        }
    }

    fn connect_error(&self, error: impl std::error::Error) -> SendError {
        let mut detail = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        SendError::Connect {
            target: self.target.clone(),
            detail,
        }
    }
}

/// Plain http, or https verified against the system's root certificates.
/// Only an https URL needs those: an image without them can still post to
/// an in-cluster http receiver.
fn connector(https: bool) -> Result<HttpsConnector<HttpConnector>, String> {
    let builder = match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(error) if https => return Err(format!("no TLS root certificates: {error}")),
        Err(_) => {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|error| error.to_string())?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    Ok(builder.https_or_http().enable_http1().build())
}
