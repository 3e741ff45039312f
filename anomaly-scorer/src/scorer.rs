//! Per-workload state: learning, then scoring, with a retraining policy;
//! turns a closed window into an `AnomalyScore` and, above the thresholds,
//! an anomaly `Finding`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use vigil_proto::v1::{AnomalyScore, FeatureContribution, Finding, FindingSource, Priority};

use crate::features::{FeatureSpec, WindowObs};
use crate::metrics;
use crate::model::{ModelError, WindowScore, WorkloadModel};
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
    Learning(Vec<WindowObs>),
    Scoring {
        model: Box<WorkloadModel>,
        accepted_since_fit: usize,
    },
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
    #[error("workload {workload:?} has no model to score with")]
    NoModel { workload: String },
}

pub struct Scorer {
    settings: Settings,
    spec: FeatureSpec,
    store: Option<ModelStore>,
    rule_findings: Arc<RuleFindings>,
    workloads: HashMap<String, Workload>,
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
            workloads: HashMap::new(),
        }
    }

    /// Learns from or scores one window.
    pub async fn process(&mut self, window: ClosedWindow) -> Result<Output, ScoreError> {
        let key = window.meta.workload.clone();
        if !self.workloads.contains_key(&key) {
            let state = match self.load(&key).await {
                Some(model) => Workload::Scoring {
                    model: Box::new(model),
                    accepted_since_fit: 0,
                },
                None => Workload::Learning(Vec::new()),
            };
            self.workloads.insert(key.clone(), state);
        }
        let learning = matches!(self.workloads.get(&key), Some(Workload::Learning(_)));
        // A container the rules flagged never trains its workload's baseline.
        let trusted = !self.rule_findings.holds(&window.meta.container_id);
        if learning {
            if trusted {
                self.learn(&key, window.obs.clone()).await;
            } else {
                ::metrics::counter!(metrics::UNTRUSTED_WINDOWS).increment(1);
            }
            ::metrics::counter!(metrics::WINDOWS, "phase" => "learning").increment(1);
            return Ok(Output {
                score: anomaly_score(&window, None, true, Vec::new()),
                finding: None,
            });
        }
        self.score(&key, window, trusted).await
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

    async fn learn(&mut self, key: &str, obs: WindowObs) {
        let Some(Workload::Learning(windows)) = self.workloads.get_mut(key) else {
            return;
        };
        windows.push(obs);
        if windows.len() < self.settings.learning_windows {
            return;
        }
        let windows = std::mem::take(windows);
        // Another instance may have finished learning this workload first.
        let model = match self.load(key).await {
            Some(model) => model,
            None => match WorkloadModel::fit(&self.spec, windows, Vec::new(), SEED) {
                Ok(model) => {
                    ::metrics::counter!(metrics::MODELS, "outcome" => "fitted").increment(1);
                    tracing::info!(message = "Learnt workload baseline.", workload = %key, windows = model.anchors.len());
                    self.save(key, &model).await;
                    model
                }
                Err(error) => {
                    metrics::error("fit_failed", "learn");
                    tracing::warn!(message = "Cannot fit model; learning on.", workload = %key, %error);
                    return;
                }
            },
        };
        self.workloads.insert(
            key.to_owned(),
            Workload::Scoring {
                model: Box::new(model),
                accepted_since_fit: 0,
            },
        );
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
        &mut self,
        key: &str,
        window: ClosedWindow,
        trusted: bool,
    ) -> Result<Output, ScoreError> {
        let Some(Workload::Scoring {
            model,
            accepted_since_fit,
        }) = self.workloads.get_mut(key)
        else {
            return Err(ScoreError::NoModel {
                workload: key.to_owned(),
            });
        };
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
        let finding = anomalous.then(|| finding(&window, &score, model));
        let mut refit = None;
        if trusted && !anomalous && model.accepts(&scored) {
            model.accept(window.obs);
            *accepted_since_fit += 1;
            if self.settings.retrain_every > 0 && *accepted_since_fit >= self.settings.retrain_every
            {
                *accepted_since_fit = 0;
                refit = Some((model.anchors.clone(), model.accepted.clone()));
            }
        }
        if let Some((anchors, accepted)) = refit {
            self.refit(key, anchors, accepted).await;
        }
        Ok(Output { score, finding })
    }

    async fn refit(&mut self, key: &str, anchors: Vec<WindowObs>, accepted: Vec<WindowObs>) {
        match WorkloadModel::fit(&self.spec, anchors, accepted, SEED) {
            Ok(model) => {
                ::metrics::counter!(metrics::MODELS, "outcome" => "refitted").increment(1);
                self.save(key, &model).await;
                self.workloads.insert(
                    key.to_owned(),
                    Workload::Scoring {
                        model: Box::new(model),
                        accepted_since_fit: 0,
                    },
                );
            }
            Err(error) => {
                metrics::error("fit_failed", "refit");
                tracing::warn!(message = "Cannot refit model; keeping the old one.", workload = %key, %error);
            }
        }
    }

    /// Workloads known, and how many are still learning.
    pub fn workload_counts(&self) -> (usize, usize) {
        let learning = self
            .workloads
            .values()
            .filter(|w| matches!(w, Workload::Learning(_)))
            .count();
        (self.workloads.len(), learning)
    }
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

fn finding(window: &ClosedWindow, score: &AnomalyScore, model: &WorkloadModel) -> Finding {
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
        model.finding_threshold(0.0),
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
