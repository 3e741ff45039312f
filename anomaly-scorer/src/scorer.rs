//! Per-workload state: learning, then scoring, with a retraining policy;
//! turns a closed window into an `AnomalyScore` and, above the thresholds,
//! an anomaly `Finding`.
//!
//! Every partition lane calls [`Scorer::process`] on its own. The map of
//! workloads sits behind a lock that is only held for in-memory steps
//! (look up, push, swap): never across an object-store round trip, a
//! window's scoring or a model fit. Fits run on tokio's blocking pool and
//! the new model is swapped in when done; lanes scoring the same workload
//! meanwhile use the model they found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use sha2::{Digest, Sha256};
use vigil_proto::v1::{AnomalyScore, FeatureContribution, Finding, FindingSource, Priority};

use crate::features::{FeatureSpec, WindowObs};
use crate::metrics;
use crate::model::{ModelError, WindowScore, WorkloadModel, push_accepted};
use crate::store::{ModelStore, StoreError};
use crate::taint::RuleFindings;
use crate::window::ClosedWindow;

/// Name of the anomaly findings (Finding.name).
pub const FINDING_NAME: &str = "Anomalous container behaviour";
/// Seed of every forest: a workload's model depends only on its windows.
const SEED: u64 = 0;
/// A STIDE novelty at or below this never raises a finding by itself.
pub const MIN_NOVELTY: f64 = 0.1;
/// Default floor of the score threshold (`finding_min_score`): a model
/// whose training windows all scored low still needs a clearly isolated
/// window, as normal rows of an isolation forest score about 0.4–0.55.
pub const DEFAULT_MIN_SCORE: f64 = 0.6;

/// Settings taken from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub learning_windows: usize,
    pub retrain_every: usize,
    pub finding_min_score: f64,
    pub explain_top: usize,
}

enum Workload {
    /// Gathering normal windows; `fitting` once they are handed to a fit
    /// (windows arriving meanwhile are not kept).
    Learning {
        windows: Vec<WindowObs>,
        fitting: bool,
    },
    Scoring(Scoring),
}

struct Scoring {
    model: Arc<WorkloadModel>,
    /// Windows accepted since the model was stored (see [`WorkloadModel::accepts`]).
    accepted: Vec<WindowObs>,
    accepted_since_fit: usize,
    /// A refit is running; no second one starts.
    refitting: bool,
}

impl Workload {
    fn learning() -> Self {
        Workload::Learning {
            windows: Vec::new(),
            fitting: false,
        }
    }

    fn scoring(model: WorkloadModel) -> Self {
        Workload::Scoring(Scoring {
            accepted: model.accepted.clone(),
            model: Arc::new(model),
            accepted_since_fit: 0,
            refitting: false,
        })
    }
}

/// What one window produced.
pub struct Output {
    pub score: AnomalyScore,
    pub finding: Option<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("scoring a window of workload {workload:?}: {source}")]
    Model {
        workload: String,
        #[source]
        source: ModelError,
    },
}

/// What a window leads to, decided under the lock, done outside it.
enum Step {
    /// Learning; with the windows to fit when learning is complete.
    Learn(Option<Vec<WindowObs>>),
    Score(Arc<WorkloadModel>),
}

/// Inputs of a refit: the model's anchors and the accepted windows.
struct Refit {
    model: Arc<WorkloadModel>,
    accepted: Vec<WindowObs>,
}

pub struct Scorer {
    settings: Settings,
    spec: FeatureSpec,
    store: Option<ModelStore>,
    rule_findings: Arc<RuleFindings>,
    workloads: Mutex<HashMap<String, Workload>>,
}

impl Scorer {
    pub fn new(
        settings: Settings,
        store: Option<ModelStore>,
        rule_findings: Arc<RuleFindings>,
    ) -> Self {
        Self {
            settings,
            spec: FeatureSpec::service(),
            store,
            rule_findings,
            workloads: Mutex::new(HashMap::new()),
        }
    }

    /// The workloads; held only for in-memory steps. A panic elsewhere
    /// while it was held leaves consistent entries (each step is one
    /// assignment), so a poisoned lock is used as is.
    fn workloads(&self) -> MutexGuard<'_, HashMap<String, Workload>> {
        self.workloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Learns from or scores one window.
    pub async fn process(&self, window: ClosedWindow) -> Result<Output, ScoreError> {
        let key = window.meta.workload.clone();
        let first_sight = {
            let mut workloads = self.workloads();
            let new = !workloads.contains_key(&key);
            if new {
                workloads.insert(key.clone(), Workload::learning());
            }
            new
        };
        if first_sight && let Some(model) = self.load(&key).await {
            let mut workloads = self.workloads();
            if let Some(entry @ Workload::Learning { fitting: false, .. }) = workloads.get_mut(&key)
            {
                *entry = Workload::scoring(model);
            }
        }
        // A container the rules flagged never trains its workload's baseline.
        let trusted = !self.rule_findings.holds(&window.meta.container_id);
        match self.step(&key, &window.obs, trusted) {
            Step::Score(model) => self.score(&key, &model, window, trusted).await,
            Step::Learn(complete) => {
                if let Some(windows) = complete {
                    self.learn(&key, windows).await;
                }
                ::metrics::counter!(metrics::WINDOWS, "phase" => "learning").increment(1);
                Ok(Output {
                    score: anomaly_score(&window, None, true, Vec::new()),
                    finding: None,
                })
            }
        }
    }

    /// Takes a learning window in, or hands out the model to score with.
    fn step(&self, key: &str, obs: &WindowObs, trusted: bool) -> Step {
        let mut workloads = self.workloads();
        let workload = workloads
            .entry(key.to_owned())
            .or_insert_with(Workload::learning);
        match workload {
            Workload::Scoring(scoring) => Step::Score(scoring.model.clone()),
            Workload::Learning { .. } if !trusted => {
                ::metrics::counter!(metrics::UNTRUSTED_WINDOWS).increment(1);
                Step::Learn(None)
            }
            Workload::Learning { fitting: true, .. } => Step::Learn(None),
            Workload::Learning { windows, fitting } => {
                windows.push(obs.clone());
                if windows.len() < self.settings.learning_windows {
                    return Step::Learn(None);
                }
                *fitting = true;
                Step::Learn(Some(std::mem::take(windows)))
            }
        }
    }

    /// The model of a workload from the store; a model that does not load
    /// is counted and relearnt, never fatal.
    async fn load(&self, workload: &str) -> Option<WorkloadModel> {
        let store = self.store.as_ref()?;
        match store.load(workload).await {
            Ok(Some(model)) => {
                ::metrics::counter!(metrics::MODELS, "outcome" => "loaded").increment(1);
                tracing::info!(message = "Loaded stored model.", %workload);
                Some(model)
            }
            Ok(None) => None,
            Err(error) => {
                let error_type = match error {
                    StoreError::Load { .. } => "model_invalid",
                    _ => "model_unreadable",
                };
                metrics::error(error_type, "load_model");
                tracing::warn!(message = "Stored model unusable; learning anew.", %workload, %error);
                None
            }
        }
    }

    /// Fits the first model of a workload from its learning windows (or
    /// takes the one another instance stored meanwhile) and switches the
    /// workload to scoring; on failure it learns on from scratch.
    async fn learn(&self, key: &str, windows: Vec<WindowObs>) {
        let model = match self.load(key).await {
            Some(model) => Ok(model),
            None => self.fit(windows, Vec::new()).await,
        };
        let next = match model {
            Ok(model) => {
                ::metrics::counter!(metrics::MODELS, "outcome" => "fitted").increment(1);
                tracing::info!(message = "Learnt workload baseline.", workload = %key, windows = model.anchors.len());
                self.save(key, &model).await;
                Workload::scoring(model)
            }
            Err(error) => {
                metrics::error("fit_failed", "learn");
                tracing::warn!(message = "Cannot fit model; learning on.", workload = %key, %error);
                Workload::learning()
            }
        };
        self.workloads().insert(key.to_owned(), next);
    }

    /// Fits a model on tokio's blocking pool.
    async fn fit(
        &self,
        anchors: Vec<WindowObs>,
        accepted: Vec<WindowObs>,
    ) -> Result<WorkloadModel, FitError> {
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || WorkloadModel::fit(&spec, anchors, accepted, SEED))
            .await
            .map_err(|error| FitError::Task(error.to_string()))?
            .map_err(FitError::Model)
    }

    async fn save(&self, key: &str, model: &WorkloadModel) {
        let Some(store) = &self.store else {
            return;
        };
        if let Err(error) = store.save(key, model).await {
            metrics::error("model_store_failed", "save_model");
            tracing::warn!(message = "Cannot store model.", workload = %key, %error);
        }
    }

    async fn score(
        &self,
        key: &str,
        model: &WorkloadModel,
        window: ClosedWindow,
        trusted: bool,
    ) -> Result<Output, ScoreError> {
        let started = Instant::now();
        let scored = model
            .score(&window.obs, self.settings.explain_top)
            .map_err(|source| ScoreError::Model {
                workload: key.to_owned(),
                source,
            })?;
        ::metrics::histogram!(metrics::SCORE_SECONDS).record(started.elapsed().as_secs_f64());
        ::metrics::counter!(metrics::WINDOWS, "phase" => "scored").increment(1);
        let anomalous = model.is_anomalous(&scored, self.settings.finding_min_score, MIN_NOVELTY);
        let names = model.featurizer.names();
        let explanation: Vec<FeatureContribution> = scored
            .top
            .iter()
            .map(|&(column, value, weight)| FeatureContribution {
                feature: names.get(column).cloned().unwrap_or_default(),
                value,
                weight,
            })
            .collect();
        let score = anomaly_score(&window, Some(&scored), false, explanation);
        let threshold = model.finding_threshold(self.settings.finding_min_score);
        let finding = anomalous.then(|| finding(&window, &score, threshold));
        if trusted
            && !anomalous
            && model.accepts(&scored)
            && let Some(refit) = self.accept(key, window.obs)
        {
            self.refit(key, refit).await;
        }
        Ok(Output { score, finding })
    }

    /// Keeps a clearly normal window for the next refit; returns the refit's
    /// inputs when one is due.
    fn accept(&self, key: &str, window: WindowObs) -> Option<Refit> {
        let mut workloads = self.workloads();
        let Some(Workload::Scoring(scoring)) = workloads.get_mut(key) else {
            return None;
        };
        push_accepted(&mut scoring.accepted, scoring.model.anchors.len(), window);
        scoring.accepted_since_fit += 1;
        let due = self.settings.retrain_every > 0
            && scoring.accepted_since_fit >= self.settings.retrain_every
            && !scoring.refitting;
        if !due {
            return None;
        }
        scoring.accepted_since_fit = 0;
        scoring.refitting = true;
        Some(Refit {
            model: scoring.model.clone(),
            accepted: scoring.accepted.clone(),
        })
    }

    /// Refits on the anchors and accepted windows, stores the new model and
    /// swaps it in; windows accepted during the fit are kept.
    async fn refit(&self, key: &str, refit: Refit) {
        let fitted = self.fit(refit.model.anchors.clone(), refit.accepted).await;
        let model = match fitted {
            Ok(model) => {
                ::metrics::counter!(metrics::MODELS, "outcome" => "refitted").increment(1);
                self.save(key, &model).await;
                Some(Arc::new(model))
            }
            Err(error) => {
                metrics::error("fit_failed", "refit");
                tracing::warn!(message = "Cannot refit model; keeping the old one.", workload = %key, %error);
                None
            }
        };
        let mut workloads = self.workloads();
        if let Some(Workload::Scoring(scoring)) = workloads.get_mut(key) {
            scoring.refitting = false;
            if let Some(model) = model {
                scoring.model = model;
            }
        }
    }

    /// Workloads known, and how many are still learning.
    pub fn workload_counts(&self) -> (usize, usize) {
        let workloads = self.workloads();
        let learning = workloads
            .values()
            .filter(|w| matches!(w, Workload::Learning { .. }))
            .count();
        (workloads.len(), learning)
    }
}

#[derive(Debug, thiserror::Error)]
enum FitError {
    #[error(transparent)]
    Model(ModelError),
    #[error("fit task failed: {0}")]
    Task(String),
}

fn anomaly_score(
    window: &ClosedWindow,
    scored: Option<&WindowScore>,
    learning: bool,
    explanation: Vec<FeatureContribution>,
) -> AnomalyScore {
    AnomalyScore {
        node: window.meta.node.clone(),
        container_id: window.meta.container_id.clone(),
        pod: window.meta.pod.clone(),
        namespace: window.meta.namespace.clone(),
        workload: window.meta.workload.clone(),
        window_end_ns: window.end_ns,
        window_events: u32::try_from(window.obs.calls.len()).unwrap_or(u32::MAX),
        score: scored.map_or(0.0, |s| s.score),
        novelty: scored.map_or(0.0, |s| s.novelty),
        learning,
        explanation,
    }
}

/// Deterministic id of a window's outputs: the same window (redelivered)
/// gives the same id, which JetStream de-duplicates.
pub fn window_id(kind: &str, container_id: &str, window_end_ns: u64, events: u32) -> String {
    let digest = Sha256::digest(format!("{kind}|{container_id}|{window_end_ns}|{events}"));
    hex::encode(&digest[..16])
}

/// The anomaly finding of a window; `threshold` is the score threshold it
/// was held to.
fn finding(window: &ClosedWindow, score: &AnomalyScore, threshold: f64) -> Finding {
    let top: Vec<String> = score
        .explanation
        .iter()
        .map(|c| format!("{}={:.3}", c.feature, c.value))
        .collect();
    let meta = &window.meta;
    let output = format!(
        "Container {} of workload {} behaves unlike its baseline: score {:.3} (threshold {:.3}), \
         unseen 6-grams {:.3}; top features: {}",
        meta.container_id,
        meta.workload,
        score.score,
        threshold,
        score.novelty,
        top.join(", ")
    );
    let output_fields = HashMap::from([
        ("workload".to_owned(), meta.workload.clone()),
        ("score".to_owned(), format!("{:.4}", score.score)),
        ("novelty".to_owned(), format!("{:.4}", score.novelty)),
        ("window_end_ns".to_owned(), score.window_end_ns.to_string()),
    ]);
    Finding {
        id: window_id(
            "finding",
            &meta.container_id,
            score.window_end_ns,
            score.window_events,
        ),
        time_ns: vigil_service::clock::wall_ns(),
        source: FindingSource::Anomaly as i32,
        name: FINDING_NAME.to_owned(),
        priority: Priority::Warning as i32,
        tags: vec!["anomaly".to_owned()],
        output,
        output_fields,
        container_id: meta.container_id.clone(),
        pod: meta.pod.clone(),
        namespace: meta.namespace.clone(),
        node: meta.node.clone(),
        events: Vec::new(),
        cgroup_path: meta.cgroup_path.clone(),
        pod_uid: meta.pod_uid.clone(),
        score: score.score,
        explanation: score.explanation.clone(),
        pod_labels: meta.labels.clone(),
    }
}
