//! Every protobuf payload a service consumes, decoded as the services do
//! (`vigil_bus::codec::decode`; tonic's prost codec for gRPC): the error
//! names the type, subject and sequence, and what decodes re-encodes to
//! bytes that decode to the same message.

use prost::Message;
use vigil_bus::codec;
use vigil_proto::v1;

const SUBJECT: &str = "vigil.fuzz.subject";
const SEQUENCE: u64 = 7;

macro_rules! payloads {
    ($($ty:ident),* $(,)?) => {
        /// The payload types, in the order the selector byte picks them.
        pub const NAMES: &[&str] = &[$(stringify!($ty)),*];

        /// Decodes `payload` as the `index`th type of [`NAMES`] (modulo
        /// their count) and checks it.
        pub fn check_as(index: u8, payload: &[u8]) {
            let mut index = usize::from(index) % NAMES.len();
            $(
                if index == 0 {
                    return check_payload::<v1::$ty>(stringify!($ty), payload);
                }
                index -= 1;
            )*
            unreachable!("index {index} past the payload types");
        }

        /// A default-valued message of each type, encoded, with its selector.
        pub fn empty_seeds() -> Vec<(u8, Vec<u8>)> {
            let encoded = vec![$(v1::$ty::default().encode_to_vec()),*];
            (0u8..).zip(encoded).collect()
        }
    };
}

payloads!(
    // detectors, anomaly-scorer: vigil.events.>
    EventBatch,
    // recordings and replays
    Event,
    // responder, anomaly-scorer's taint guard, console: vigil.findings.>
    Finding,
    // console: vigil.actions.>; gRPC replies
    ActionRecord,
    QuarantineReply,
    ReleaseReply,
    ListQuarantinedReply,
    // console: VIGIL_SCORES; anomaly-scorer gRPC
    AnomalyScore,
    TopAnomalousReply,
    GetScoreRequest,
    TopAnomalousRequest,
    StreamScoresRequest,
    // responder: KV VIGIL_QUARANTINE; gRPC requests
    QuarantineState,
    QuarantineRequest,
    ReleaseRequest,
    ListQuarantinedRequest,
    // console: KV VIGIL_INCIDENTS; audit records on vigil.audit.>
    IncidentState,
    AuditRecord,
    // detectors, anomaly-scorer: vigil.events.> as the collector writes it
    // (appended, so the selectors of the seeds above keep their types)
    CompactBatch,
);

/// The selector of a payload type by name.
pub fn selector(name: &str) -> Option<u8> {
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// Input layout: one selector byte, then the payload.
pub fn check(input: &[u8]) {
    if let Some((selector, payload)) = input.split_first() {
        check_as(*selector, payload);
    }
}

fn check_payload<M: Message + Default + PartialEq>(name: &str, payload: &[u8]) {
    match codec::decode::<M>(payload, SUBJECT, SEQUENCE) {
        Ok(message) => round_trip(name, &message),
        Err(error) => {
            let text = error.to_string();
            let prefix =
                format!("malformed {name} on subject {SUBJECT} (stream sequence {SEQUENCE}): ");
            assert!(text.starts_with(&prefix), "{text}");
            assert!(text.len() > prefix.len(), "no reason given: {text}");
        }
    }
}

fn round_trip<M: Message + Default + PartialEq>(name: &str, message: &M) {
    let encoded = codec::encode(message);
    assert_eq!(encoded.len(), message.encoded_len(), "{name}: encoded_len");
    let again = match codec::decode::<M>(&encoded, SUBJECT, SEQUENCE) {
        Ok(again) => again,
        Err(error) => panic!("{name}: own encoding does not decode: {error}"),
    };
    assert!(
        same(&again, message),
        "{name}: the round trip changed the message"
    );
}

/// Equal messages. Not byte equality (map fields are hash maps, encoded in
/// no fixed order) and not plain `PartialEq` alone (a NaN score is not equal
/// to itself): a message holding a NaN is compared by its encoded size.
#[allow(clippy::eq_op, reason = "a message unequal to itself holds a NaN")]
pub fn same<M: Message + PartialEq>(left: &M, right: &M) -> bool {
    if left == left {
        left == right
    } else {
        left.encoded_len() == right.encoded_len()
    }
}
