//! `vigil-bus` owns Vigil's contract with NATS JetStream.
//!
//! Every subject string, stream, durable consumer and header that crosses a
//! service boundary is defined here and nowhere else:
//!
//! * [`subject`]: subject builders and the wildcards operators filter with;
//! * [`topology`]: stream and consumer definitions, created idempotently;
//! * [`codec`]: protobuf payloads in and out, with errors that say where;
//! * [`trace`]: W3C trace context carried in message headers;
//! * [`connect`]: connecting with back-off (nkey, TLS) and checking the server version;
//! * [`access`]: each service's NATS permissions and the server's `authorization` block;
//! * [`publish`]: de-duplicated, traced JetStream publishing;
//! * [`consume`]: the one consume loop: decode, handle, then ack, retry or reject;
//! * [`loss`]: data JetStream discards before a consumer handled it, counted and reported.

pub mod access;
pub mod codec;
pub mod connect;
pub mod consume;
pub mod loss;
pub mod publish;
pub mod subject;
pub mod topology;
pub mod trace;

pub use async_nats;
pub use connect::{BusConnection, ConnectError, ConnectOptions, Security, TlsFiles};
pub use consume::{Delivery, Disposition};
pub use publish::{PublishError, Publisher};
pub use trace::TraceContext;
