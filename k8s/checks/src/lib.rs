//! Checks of the deployment in `k8s/`, with no cluster: render every
//! overlay ([`render`]), validate every object against the Kubernetes API
//! types ([`validate`]), evaluate the Pod Security Standards on every pod
//! template ([`pss`]) and read the RBAC rules ([`rbac`]); NATS credentials
//! for a deployment ([`nats_creds`]).

pub mod nats_creds;
pub mod objects;
pub mod podman;
pub mod pss;
pub mod rbac;
pub mod render;
pub mod validate;

pub use objects::Object;
