//! HTTP side: parses an API path into kind, namespace, name and verb, checks
//! RBAC and injected failures, and answers as the API server would.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use crate::store::{Change, Kind, object_name, selected};
use crate::{ApiError, Recorded, Shared};

/// What a request is about, from its path and method.
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    verb: &'static str,
}

impl Target {
    fn resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.kind.resource()),
            None => self.kind.resource().to_owned(),
        }
    }
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = shared.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let query = Query::parse(uri.query());
    let Some(target) = parse_target(&method, uri.path(), &query) else {
        let error = ApiError::new(404, "NotFound", format!("no such path {}", uri.path()));
        shared.record(Recorded::unknown(&method, uri.path(), 404));
        return error.into_response();
    };
    let response = authorize_and_serve(&shared, &target, &query, &headers, body).await;
    shared.record(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        verb: target.verb.to_owned(),
        api_group: target.kind.group().to_owned(),
        resource: target.resource(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
        status: response.status().as_u16(),
    });
    response
}

async fn authorize_and_serve(
    shared: &Arc<Shared>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let resource = target.resource();
    if !shared
        .rbac
        .allows(target.kind.group(), &resource, target.verb)
    {
        return ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} is forbidden: cannot {} resource \"{resource}\" in API group \"{}\"",
                target.name.as_deref().unwrap_or(&resource),
                target.verb,
                target.kind.group()
            ),
        )
        .into_response();
    }
    if let Some(error) = shared.take_failure(target.verb, &resource) {
        return error.into_response();
    }
    match serve(shared, target, query, headers, &body) {
        Ok(Served::Object(status, object)) => (status, axum::Json(object)).into_response(),
        Ok(Served::Watch(since)) => watch(shared, target, query, since),
        Err(error) => error.into_response(),
    }
}

enum Served {
    Object(StatusCode, Value),
    Watch(u64),
}

fn serve(
    shared: &Shared,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Served, ApiError> {
    let kind = target.kind;
    let namespace = target.namespace.as_deref().unwrap_or("");
    let mut store = shared.store();
    match (target.verb, target.name.as_deref()) {
        ("watch", _) => {
            let since = query.get("resourceVersion").and_then(|rv| rv.parse().ok());
            Ok(Served::Watch(since.unwrap_or(store.resource_version())))
        }
        ("list", _) => {
            let items: Vec<Value> = store
                .list(kind, target.namespace.as_deref())
                .into_iter()
                .filter(|o| selected(o, query.get("fieldSelector"), query.get("labelSelector")))
                .collect();
            let list = json!({
                "apiVersion": kind.api_version(),
                "kind": format!("{}List", kind.kind()),
                "metadata": {"resourceVersion": store.resource_version().to_string()},
                "items": items,
            });
            Ok(Served::Object(StatusCode::OK, list))
        }
        ("get", Some(name)) => store
            .get(kind, namespace, name)
            .cloned()
            .map(|o| Served::Object(StatusCode::OK, o))
            .ok_or_else(|| ApiError::not_found(kind, name)),
        ("create", None) => {
            let object = parse_body(kind, body)?;
            let change = store.create(kind, namespace, object)?;
            shared.publish(&change);
            Ok(Served::Object(StatusCode::CREATED, change.object))
        }
        ("create", Some(name)) => evict(shared, &mut store, namespace, name, body),
        ("patch", Some(name)) => {
            let patch = parse_body(kind, body)?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let apply = content_type.starts_with("application/apply-patch");
            if apply {
                check_apply(kind, name, &patch, query)?;
            } else if !content_type.contains("merge-patch") {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the fake supports merge, strategic-merge and apply patches, not {content_type:?}"
                    ),
                ));
            }
            let change = store.patch(kind, namespace, name, &patch, apply)?;
            shared.publish(&change);
            Ok(Served::Object(StatusCode::OK, change.object))
        }
        ("update", Some(name)) => {
            let object = parse_body(kind, body)?;
            if object_name(&object).as_deref() != Some(name) {
                return Err(ApiError::invalid(
                    kind,
                    "metadata.name must match the path".into(),
                ));
            }
            let current_version = store
                .get(kind, namespace, name)
                .and_then(|o| o.pointer("/metadata/resourceVersion").cloned());
            let sent_version = object.pointer("/metadata/resourceVersion").cloned();
            if sent_version.is_some() && sent_version != current_version {
                return Err(ApiError::conflict(kind, name));
            }
            let change = store.put(kind, namespace, object)?;
            shared.publish(&change);
            Ok(Served::Object(StatusCode::OK, change.object))
        }
        ("delete", Some(name)) => {
            let change = store.delete(kind, namespace, name)?;
            shared.publish(&change);
            Ok(Served::Object(StatusCode::OK, change.object))
        }
        (verb, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on this path"),
        )),
    }
}

/// POST .../pods/{name}/eviction: the body must be a policy/v1 Eviction for
/// that pod; the pod is then deleted, as with no disruption budget in the way.
fn evict(
    shared: &Shared,
    store: &mut crate::store::Store,
    namespace: &str,
    name: &str,
    body: &[u8],
) -> Result<Served, ApiError> {
    let eviction: k8s_openapi::api::policy::v1::Eviction = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "BadRequest", format!("not an Eviction: {e}")))?;
    if eviction.metadata.name.as_deref() != Some(name) {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!(
                "eviction names {:?}, path names {name:?}",
                eviction.metadata.name
            ),
        ));
    }
    let change = store.delete(Kind::Pod, namespace, name)?;
    shared.publish(&change);
    Ok(Served::Object(
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// Server-side apply requires a field manager and a body naming the object.
fn check_apply(kind: Kind, name: &str, patch: &Value, query: &Query) -> Result<(), ApiError> {
    if query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::new(
            422,
            "Invalid",
            "fieldManager is required for apply patch".to_owned(),
        ));
    }
    let api_version = patch.get("apiVersion").and_then(Value::as_str);
    let kind_name = patch.get("kind").and_then(Value::as_str);
    if api_version != Some(kind.api_version()) || kind_name != Some(kind.kind()) {
        return Err(ApiError::invalid(
            kind,
            format!(
                "apply patch must set apiVersion {:?} and kind {:?}",
                kind.api_version(),
                kind.kind()
            ),
        ));
    }
    if object_name(patch).as_deref() != Some(name) {
        return Err(ApiError::invalid(
            kind,
            "metadata.name must match the path".into(),
        ));
    }
    Ok(())
}

fn parse_body(kind: Kind, body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "BadRequest",
            format!("body of {} request is not JSON: {e}", kind.kind()),
        )
    })
}

fn watch(shared: &Arc<Shared>, target: &Target, query: &Query, since: u64) -> Response {
    let (backlog, receiver) = shared.subscribe(since);
    let kind = target.kind;
    let namespace = target.namespace.clone();
    let field_selector = query.get("fieldSelector").map(str::to_owned);
    let label_selector = query.get("labelSelector").map(str::to_owned);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs);
    let wanted = move |change: &Change| {
        change.kind == kind
            && change.resource_version > since
            && namespace.as_deref().is_none_or(|ns| {
                change
                    .object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(ns)
            })
            && selected(
                &change.object,
                field_selector.as_deref(),
                label_selector.as_deref(),
            )
    };
    let live = futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(change) => return Some((change, receiver)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    let lines = futures::stream::iter(backlog)
        .chain(live)
        .filter(move |change| futures::future::ready(wanted(change)))
        .map(|change| {
            let line = json!({"type": change.change_type, "object": change.object});
            Ok::<_, std::convert::Infallible>(Bytes::from(format!("{line}\n")))
        })
        .take_until(tokio::time::sleep(timeout));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn parse_target(method: &Method, path: &str, query: &Query) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", "networking.k8s.io", "v1", rest @ ..] => rest,
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
        rest => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    let core = segments.first() == Some(&"api");
    let kind = match (core, resource) {
        (true, "pods") => Kind::Pod,
        (false, "networkpolicies") => Kind::NetworkPolicy,
        _ => return None,
    };
    if subresource.is_some_and(|s| kind != Kind::Pod || s != "eviction") {
        return None;
    }
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method.as_str(), name, watching) {
        ("GET", None, true) => "watch",
        ("GET", None, false) => "list",
        ("GET", Some(_), _) => "get",
        ("POST", _, _) => "create",
        ("PATCH", Some(_), _) => "patch",
        ("PUT", Some(_), _) => "update",
        ("DELETE", Some(_), _) => "delete",
        _ => return None,
    };
    Some(Target {
        kind,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
        verb,
    })
}

/// Query parameters, percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect();
        Query(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = text.get(i + 1..i + 3).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("spec.nodeName%3Dn1"), "spec.nodeName=n1");
        assert_eq!(decode("a+b%2"), "a b%2");
    }

    #[test]
    fn paths_map_to_verbs() {
        let q = Query::parse(Some("watch=true"));
        let t = parse_target(&Method::GET, "/api/v1/pods", &q).expect("pods");
        assert_eq!((t.kind, t.verb), (Kind::Pod, "watch"));
        let q = Query::parse(None);
        let t = parse_target(
            &Method::POST,
            "/api/v1/namespaces/shop/pods/web/eviction",
            &q,
        )
        .expect("eviction");
        assert_eq!(t.resource(), "pods/eviction");
        assert_eq!(t.verb, "create");
        let t = parse_target(
            &Method::PATCH,
            "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/deny",
            &q,
        )
        .expect("policy");
        assert_eq!(
            (t.kind, t.verb, t.namespace.as_deref()),
            (Kind::NetworkPolicy, "patch", Some("shop"))
        );
        assert!(parse_target(&Method::GET, "/api/v1/secrets", &q).is_none());
    }
}
