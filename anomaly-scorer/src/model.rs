//! A workload's model: its baseline, an isolation forest over cross-fitted
//! feature rows, and what is needed to explain and to retrain safely.

use linfa::prelude::*;
use ndarray::{Array2, ArrayView1};
use serde::{Deserialize, Serialize};
use vigil_isolation_forest::{IsolationForest, IsolationForestError};

use crate::features::{Baseline, FeatureSpec, Featurizer, WindowObs};

/// Folds for cross-fitting the training rows.
const FOLDS: usize = 5;
/// Bumped when the stored form changes; older models are relearnt.
pub const MODEL_VERSION: u32 = 2;
/// Thresholds are Tukey's far-out fence over the training windows' values,
/// Q3 + FENCE_IQR × (Q3 − Q1): a textbook rule fixed up front, robust to a
/// quarter of odd training windows (a container's start-up, a deploy),
/// where a high quantile of 50 windows is just their maximum.
pub const FENCE_IQR: f64 = 3.0;
/// Deviation floor, so a feature that never moved in training (standard
/// deviation 0) does not dominate every explanation.
const STD_FLOOR: f64 = 0.02;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot fit on {0} windows: at least {FOLDS} are needed for cross-fitting")]
    TooFewWindows(usize),
    #[error(transparent)]
    Forest(#[from] IsolationForestError),
    #[error("model is version {found}, this scorer reads version {MODEL_VERSION}")]
    Version { found: u32 },
    #[error("model does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("model is inconsistent: forest has {forest} features, featurizer {featurizer}")]
    Inconsistent { forest: usize, featurizer: usize },
}

/// The score of one window, with its explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowScore {
    /// −score_samples: in (0, 1], higher is more anomalous.
    pub score: f64,
    /// STIDE: share of unseen `stide_k`-grams.
    pub novelty: f64,
    /// (column, value, weight): the largest deviations from training, largest first.
    pub top: Vec<(usize, f64, f64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadModel {
    pub version: u32,
    pub featurizer: Featurizer,
    pub baseline: Baseline,
    pub forest: IsolationForest,
    /// Scores of the cross-fitted training rows, sorted.
    pub training_scores: Vec<f64>,
    /// STIDE novelty of the cross-fitted training windows, sorted.
    pub training_novelty: Vec<f64>,
    /// Per column: mean and standard deviation over the training rows.
    pub column_mean: Vec<f64>,
    pub column_std: Vec<f64>,
    /// The learning-period windows: always part of a refit, so that
    /// accepted later windows can never outweigh them.
    pub anchors: Vec<WindowObs>,
    /// Windows accepted since (see [`WorkloadModel::accepts`]).
    pub accepted: Vec<WindowObs>,
}

impl WorkloadModel {
    /// Learns a model from normal windows. Each training row is described
    /// against the baseline of the other folds, or every training row would
    /// look perfectly familiar and any novelty at all would isolate at once.
    pub fn fit(
        spec: &FeatureSpec,
        anchors: Vec<WindowObs>,
        accepted: Vec<WindowObs>,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let all: Vec<&WindowObs> = anchors.iter().chain(&accepted).collect();
        if all.len() < FOLDS {
            return Err(ModelError::TooFewWindows(all.len()));
        }
        let baseline = Baseline::learn(spec, all.iter().copied());
        let featurizer = Featurizer::new(spec.clone());
        let (rows, mut training_novelty) =
            cross_fitted_rows(spec, &featurizer, &all, Folds::Contiguous);
        training_novelty.sort_by(f64::total_cmp);
        let forest = IsolationForest::params()
            .seed(seed)
            .fit(&DatasetBase::from(rows.view()))?;
        let mut training_scores: Vec<f64> =
            forest.score_samples(&rows)?.iter().map(|s| -s).collect();
        training_scores.sort_by(f64::total_cmp);
        let (column_mean, column_std) = column_moments(&rows);
        Ok(Self {
            version: MODEL_VERSION,
            featurizer,
            baseline,
            forest,
            training_scores,
            training_novelty,
            column_mean,
            column_std,
            anchors,
            accepted,
        })
    }

    /// Reads a stored model, checking that it fits together.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let model: Self = serde_json::from_slice(bytes)?;
        if model.version != MODEL_VERSION {
            return Err(ModelError::Version {
                found: model.version,
            });
        }
        let featurizer = model.featurizer.width();
        if model.forest.n_features() != featurizer
            || model.column_mean.len() != featurizer
            || model.column_std.len() != featurizer
        {
            return Err(ModelError::Inconsistent {
                forest: model.forest.n_features(),
                featurizer,
            });
        }
        Ok(model)
    }

    pub fn to_json(&self) -> Result<Vec<u8>, ModelError> {
        Ok(serde_json::to_vec(self)?)
    }

    pub fn score(&self, window: &WindowObs, top: usize) -> Result<WindowScore, ModelError> {
        let row = self.featurizer.row(&self.baseline, window);
        let score = -self.forest.score_sample(&ArrayView1::from(&row))?;
        let novelty = self.baseline.stide(&self.featurizer.spec, &window.calls);
        Ok(WindowScore {
            score,
            novelty,
            top: self.explain(&row, top),
        })
    }

    /// The columns furthest above their training mean, in training standard
    /// deviations: the forest isolates a row by the values that are rare,
    /// and for this feature set (shares of new things) rare means high.
    fn explain(&self, row: &[f32], top: usize) -> Vec<(usize, f64, f64)> {
        let mut weights: Vec<(usize, f64, f64)> = row
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let v = f64::from(v);
                let z = (v - self.column_mean[i]) / self.column_std[i].max(STD_FLOOR);
                (i, v, z)
            })
            .filter(|(_, _, z)| *z > 0.0)
            .collect();
        weights.sort_by(|a, b| b.2.total_cmp(&a.2));
        weights.truncate(top);
        weights
    }

    /// The score above which a window raises a finding: the upper fence
    /// ([`FENCE_IQR`]) of the cross-fitted training windows' scores, and
    /// never below `floor`.
    pub fn finding_threshold(&self, floor: f64) -> f64 {
        upper_fence(&self.training_scores).map_or(floor, |q| q.max(floor))
    }

    /// The STIDE novelty above which a window raises a finding on its own:
    /// the upper fence over the training windows (each against the other
    /// folds), and never below `floor`. The forest alone cannot see a feature that never moved
    /// in training (it only splits on features that vary), and for a very
    /// regular workload the novelty shares are exactly such features.
    pub fn novelty_threshold(&self, floor: f64) -> f64 {
        upper_fence(&self.training_novelty).map_or(floor, |q| q.max(floor))
    }

    /// How far past its thresholds a window is: the larger of score over
    /// score threshold and novelty over novelty threshold. Above 1 the
    /// window raises a finding; as one number it ranks windows.
    pub fn anomaly_ratio(&self, score: &WindowScore, min_score: f64, min_novelty: f64) -> f64 {
        anomaly_ratio(
            score.score,
            score.novelty,
            self.finding_threshold(min_score),
            self.novelty_threshold(min_novelty),
        )
    }

    /// Whether a window's score raises a finding.
    pub fn is_anomalous(&self, score: &WindowScore, min_score: f64, min_novelty: f64) -> bool {
        self.anomaly_ratio(score, min_score, min_novelty) > 1.0
    }

    /// Whether a scored window may join the baseline. Only windows more
    /// normal than the median training window qualify, so an attacker who
    /// drifts slowly must stay inside the bulk of normal behaviour at every
    /// step; and a refit keeps every anchor, with at most as many accepted
    /// windows, so the learnt behaviour can move by at most half.
    pub fn accepts(&self, score: &WindowScore) -> bool {
        let median = self
            .training_scores
            .get(self.training_scores.len() / 2)
            .copied()
            .unwrap_or(0.0);
        score.score < median && score.novelty == 0.0
    }

    /// Keeps an accepted window (the oldest go first past the anchor count).
    pub fn accept(&mut self, window: WindowObs) {
        push_accepted(&mut self.accepted, self.anchors.len(), window);
    }
}

/// Adds an accepted window, dropping the oldest past `anchors` windows, so
/// accepted windows never outnumber the anchors in a refit.
pub fn push_accepted(accepted: &mut Vec<WindowObs>, anchors: usize, window: WindowObs) {
    if accepted.len() >= anchors {
        accepted.remove(0);
    }
    accepted.push(window);
}

/// `q`-quantile of sorted values, interpolated linearly between ranks (as
/// `numpy.percentile`); `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = q.clamp(0.0, 1.0) * last as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    let fraction = position - below as f64;
    Some(sorted[below] + (sorted[above] - sorted[below]) * fraction)
}

/// Tukey's far-out fence of sorted values, Q3 + [`FENCE_IQR`] × IQR.
pub fn upper_fence(sorted: &[f64]) -> Option<f64> {
    let (q1, q3) = (quantile(sorted, 0.25)?, quantile(sorted, 0.75)?);
    Some(q3 + FENCE_IQR * (q3 - q1))
}

/// The two signals against their thresholds, as one number (see
/// [`WorkloadModel::anomaly_ratio`]); thresholds must be positive.
pub fn anomaly_ratio(
    score: f64,
    novelty: f64,
    score_threshold: f64,
    novelty_threshold: f64,
) -> f64 {
    (score / score_threshold).max(novelty / novelty_threshold)
}

/// How training windows are split into folds for cross-fitting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Folds {
    /// Window `i` in fold `i % 5`: for independent traces (ADFA-LD), where
    /// every fold should see the whole range of the data.
    Interleaved,
    /// Contiguous fifths in arrival order: for a container's overlapping
    /// windows (stride < size), which `i % 5` would describe against their
    /// own neighbours' k-grams, making every training window look familiar.
    Contiguous,
}

impl Folds {
    fn of(self, i: usize, n: usize) -> usize {
        match self {
            Folds::Interleaved => i % FOLDS,
            Folds::Contiguous => i * FOLDS / n.max(1),
        }
    }
}

/// Rows of the training windows, each described against the baseline of
/// the other folds.
/// Also returns each window's STIDE novelty against the other folds.
pub fn cross_fitted_rows(
    spec: &FeatureSpec,
    featurizer: &Featurizer,
    all: &[&WindowObs],
    folds: Folds,
) -> (Array2<f32>, Vec<f64>) {
    let mut rows = Array2::<f32>::zeros((all.len(), featurizer.width()));
    let mut novelty = vec![0.0; all.len()];
    for fold in 0..FOLDS {
        let rest = all
            .iter()
            .enumerate()
            .filter(|(i, _)| folds.of(*i, all.len()) != fold)
            .map(|(_, w)| *w);
        let baseline = Baseline::learn(spec, rest);
        for (i, window) in all
            .iter()
            .enumerate()
            .filter(|(i, _)| folds.of(*i, all.len()) == fold)
        {
            let row = featurizer.row(&baseline, window);
            rows.row_mut(i).assign(&ArrayView1::from(&row));
            novelty[i] = baseline.stide(spec, &window.calls);
        }
    }
    (rows, novelty)
}

fn column_moments(rows: &Array2<f32>) -> (Vec<f64>, Vec<f64>) {
    let n = rows.nrows().max(1) as f64;
    rows.columns()
        .into_iter()
        .map(|column| {
            let mean = column.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = column
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var.sqrt())
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::{DEFAULT_MIN_SCORE, MIN_NOVELTY};

    /// A service loop of a few request shapes, chosen pseudo-randomly, so
    /// that some longer k-grams are rare even in normal windows.
    fn normal(i: usize) -> WindowObs {
        let shapes: [&[u32]; 5] = [
            &[1, 2, 3],
            &[1, 2, 4, 3],
            &[5, 1, 2, 3],
            &[1, 6, 3],
            &[2, 2, 3],
        ];
        let mut state = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut calls = Vec::new();
        while calls.len() < 48 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let pick = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % 100;
            let shape = match pick {
                0..60 => 0,
                60..80 => 1,
                80..92 => 2,
                92..98 => 3,
                _ => 4,
            };
            calls.extend_from_slice(shapes[shape]);
        }
        WindowObs {
            calls,
            execs: vec!["/app".into()],
            peers: vec!["10.0.0.1:5432".into()],
            ..WindowObs::default()
        }
    }

    fn attack() -> WindowObs {
        WindowObs {
            calls: [1, 9, 8, 9, 8, 7, 2, 3].repeat(6),
            execs: vec!["/bin/sh".into()],
            peers: vec!["203.0.113.7:4444".into()],
            sensitive_opens: 3,
            failed: 5,
        }
    }

    fn model() -> WorkloadModel {
        let anchors = (0..60).map(normal).collect();
        WorkloadModel::fit(&FeatureSpec::service(), anchors, Vec::new(), 0).expect("fit")
    }

    #[test]
    fn an_attack_window_scores_above_every_normal_one_and_is_explained() {
        let model = model();
        let attack = model.score(&attack(), 3).expect("score");
        assert!(
            model.is_anomalous(&attack, DEFAULT_MIN_SCORE, MIN_NOVELTY),
            "{attack:?}"
        );
        assert!(attack.novelty > 0.5);
        // Of 40 fresh normal windows (fixed data) at most two may cross the
        // thresholds.
        let mut flagged = 0;
        for i in 100..140 {
            let normal = model.score(&normal(i), 3).expect("score");
            assert!(normal.score < attack.score, "{normal:?} vs {attack:?}");
            flagged += usize::from(model.is_anomalous(&normal, DEFAULT_MIN_SCORE, MIN_NOVELTY));
        }
        assert!(flagged <= 2, "{flagged} of 40 normal windows flagged");
        assert_eq!(attack.top.len(), 3);
        assert!(attack.top[0].2 >= attack.top[2].2);
    }

    #[test]
    fn only_clearly_normal_windows_may_join_and_never_outnumber_the_anchors() {
        let mut model = model();
        let attack_score = model.score(&attack(), 3).expect("score");
        assert!(!model.accepts(&attack_score));
        let accepted = (100..200)
            .filter(|&i| model.accepts(&model.score(&normal(i), 3).expect("score")))
            .count();
        assert!(accepted > 0, "some normal windows are accepted");
        for i in 0..200 {
            model.accept(normal(i));
        }
        assert_eq!(model.accepted.len(), model.anchors.len());
    }

    #[test]
    fn stored_models_round_trip_and_bad_ones_are_errors() {
        let model = model();
        let bytes = model.to_json().expect("encode");
        let back = WorkloadModel::from_json(&bytes).expect("decode");
        assert_eq!(
            back.score(&attack(), 3).expect("score"),
            model.score(&attack(), 3).expect("score")
        );
        assert!(matches!(
            WorkloadModel::from_json(b"{\"version\": 1}"),
            Err(ModelError::Decode(_))
        ));
        let mut old: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        old["version"] = 0.into();
        let old = serde_json::to_vec(&old).expect("json");
        assert!(matches!(
            WorkloadModel::from_json(&old),
            Err(ModelError::Version { found: 0 })
        ));
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0], 0.99), Some(3.0));
        assert_eq!(quantile(&[0.0, 1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[0.0, 10.0], 0.99), Some(9.9));
        // Q1 1, Q3 3: fence 3 + 3 × 2; the odd 100 does not move it.
        assert_eq!(upper_fence(&[0.0, 1.0, 2.0, 3.0, 100.0]), Some(9.0));
    }

    #[test]
    fn too_few_windows_is_an_error() {
        let few = (0..3).map(normal).collect();
        assert!(matches!(
            WorkloadModel::fit(&FeatureSpec::service(), few, Vec::new(), 0),
            Err(ModelError::TooFewWindows(3))
        ));
    }
}
