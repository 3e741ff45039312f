//! Models kept in a NATS object store, so a restarted or additional scorer
//! instance scores with what another learnt.

use async_nats::jetstream::{self, object_store};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use vigil_bus::topology::SCORER_MODELS_BUCKET;

use crate::model::{ModelError, WorkloadModel};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open object store {SCORER_MODELS_BUCKET}: {0}")]
    Open(String),
    #[error("cannot read the model of workload {workload:?}: {message}")]
    Read { workload: String, message: String },
    #[error("stored model of workload {workload:?} does not load: {source}")]
    Load {
        workload: String,
        #[source]
        source: ModelError,
    },
    #[error("cannot store the model of workload {workload:?}: {message}")]
    Write { workload: String, message: String },
}

#[derive(Clone)]
pub struct ModelStore {
    bucket: object_store::ObjectStore,
}

/// Object name of a workload: a digest, since workload keys hold
/// characters (`/`, `:`, `|`) that object names should not.
pub fn object_name(workload: &str) -> String {
    hex::encode(Sha256::digest(workload.as_bytes()))
}

impl ModelStore {
    /// Creates the bucket if needed (idempotent) and opens it.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, StoreError> {
        let config = object_store::Config {
            bucket: SCORER_MODELS_BUCKET.to_owned(),
            description: Some("Anomaly-scorer models, one object per workload.".to_owned()),
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        let bucket = match js.create_object_store(config).await {
            Ok(bucket) => bucket,
            // Another instance created it a moment ago with the same config.
            Err(_) => js
                .get_object_store(SCORER_MODELS_BUCKET)
                .await
                .map_err(|e| StoreError::Open(e.to_string()))?,
        };
        Ok(Self { bucket })
    }

    /// The stored model of `workload`; `Ok(None)` when there is none.
    pub async fn load(&self, workload: &str) -> Result<Option<WorkloadModel>, StoreError> {
        let read_error = |message: String| StoreError::Read {
            workload: workload.to_owned(),
            message,
        };
        let mut object = match self.bucket.get(object_name(workload)).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_error(e.to_string())),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| read_error(e.to_string()))?;
        WorkloadModel::from_json(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Load {
                workload: workload.to_owned(),
                source,
            })
    }

    pub async fn save(&self, workload: &str, model: &WorkloadModel) -> Result<(), StoreError> {
        let write_error = |message: String| StoreError::Write {
            workload: workload.to_owned(),
            message,
        };
        let bytes = model.to_json().map_err(|e| write_error(e.to_string()))?;
        self.put_raw(workload, &bytes).await.map_err(write_error)
    }

    /// Stores raw bytes as the model of `workload` (tests use it to plant a
    /// corrupt model).
    pub async fn put_raw(&self, workload: &str, bytes: &[u8]) -> Result<(), String> {
        let mut reader = bytes;
        self.bucket
            .put(object_name(workload).as_str(), &mut reader)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
