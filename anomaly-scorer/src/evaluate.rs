//! The scorer on a team's own syscall traces, in ADFA-LD's layout, before
//! they trust it on their workloads (`vigil-scorer-cli evaluate DIR`; the
//! `adfa_ld` benchmark runs the same functions on ADFA-LD itself).
//!
//! Layout, any size:
//!
//! ```text
//! DIR/Training_Data_Master/*.txt         normal traces: all that is learnt
//! DIR/Validation_Data_Master/*.txt       normal traces: only scored
//! DIR/Attack_Data_Master/<Family>_<n>/*.txt  attack traces, by family
//! ```
//!
//! A trace is syscall numbers separated by white space, on one or more
//! lines. A folder `Hydra_FTP_3` counts towards the family `Hydra_FTP`; a
//! folder without a `_<n>` suffix is a family of its own.
//!
//! The scorer is evaluated as the service decides: the anomaly scorer's
//! features on whole traces (`FeatureSpec::traces`), training rows
//! cross-fitted over interleaved folds (traces are independent), an
//! isolation forest per seed, and the larger of the forest score and the
//! STIDE novelty over its threshold ([`anomaly_ratio`]) ranks each trace.
//! Beside it, STIDE alone: the share of a trace's 6-grams never seen in
//! training. Nothing is tuned on the attack traces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use linfa::prelude::*;
use ndarray::{Array2, ArrayView1};
use vigil_isolation_forest::{IsolationForest, IsolationForestError};

use crate::features::{Baseline, FeatureSpec, Featurizer, WindowObs};
use crate::model::{Folds, anomaly_ratio, cross_fitted_rows, upper_fence};
use crate::scorer::MIN_NOVELTY;

/// Folder of the normal traces everything is learnt from.
pub const TRAINING: &str = "Training_Data_Master";
/// Folder of the normal traces that are only scored.
pub const VALIDATION: &str = "Validation_Data_Master";
/// Folder of the attack families' folders.
pub const ATTACK: &str = "Attack_Data_Master";
/// False-positive rates the detection rate is reported at.
pub const FPRS: [f64; 3] = [0.01, 0.05, 0.10];
/// Cross-fitting needs a trace in each of its five folds.
const MIN_TRAINING: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("{}: missing folder (expected {TRAINING}, {VALIDATION} and {ATTACK}/<Family>_<n>)", .0.display())]
    MissingFolder(PathBuf),
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {token:?} is not a syscall number", path.display())]
    NotASyscall {
        path: PathBuf,
        line: usize,
        token: String,
    },
    #[error("{}: empty trace", .0.display())]
    EmptyTrace(PathBuf),
    #[error("{}: no traces (*.txt)", .0.display())]
    NoTraces(PathBuf),
    #[error("{}: needs at least {MIN_TRAINING} training traces, has {found}", path.display())]
    TooFewTraining { path: PathBuf, found: usize },
    #[error("{}: folder name is not valid UTF-8", .0.display())]
    FolderName(PathBuf),
    #[error("isolation forest: {0}")]
    Forest(#[from] IsolationForestError),
}

/// The traces of one set, read whole.
#[derive(Clone, Debug, Default)]
pub struct TraceSet {
    pub training: Vec<Vec<u32>>,
    pub validation: Vec<Vec<u32>>,
    pub attack: Vec<Vec<u32>>,
    /// Family of each attack trace (same order).
    pub family: Vec<String>,
}

impl TraceSet {
    /// Reads `dir` in ADFA-LD's layout; every error names the file (and the
    /// line of a token that is not a syscall number).
    pub fn load(dir: &Path) -> Result<Self, EvaluateError> {
        let training = read_folder(&dir.join(TRAINING))?;
        if training.len() < MIN_TRAINING {
            return Err(EvaluateError::TooFewTraining {
                path: dir.join(TRAINING),
                found: training.len(),
            });
        }
        let validation = read_folder(&dir.join(VALIDATION))?;
        let attack_dir = dir.join(ATTACK);
        let mut folders: Vec<PathBuf> = list(&attack_dir)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        folders.sort();
        if folders.is_empty() {
            return Err(EvaluateError::NoTraces(attack_dir));
        }
        let (mut attack, mut family) = (Vec::new(), Vec::new());
        for folder in folders {
            let name = family_of(&folder)?;
            let traces = read_folder(&folder)?;
            family.extend(std::iter::repeat_n(name, traces.len()));
            attack.extend(traces);
        }
        Ok(Self {
            training,
            validation,
            attack,
            family,
        })
    }

    /// Attack traces per family.
    pub fn families(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for family in &self.family {
            *counts.entry(family.clone()).or_default() += 1;
        }
        counts
    }

    /// The scored traces: validation normals first, then the attacks.
    pub fn test(&self) -> impl Iterator<Item = &Vec<u32>> {
        self.validation.iter().chain(&self.attack)
    }
}

/// `Hydra_FTP_3` → `Hydra_FTP`; a name without a numeric suffix is kept.
fn family_of(folder: &Path) -> Result<String, EvaluateError> {
    let name = folder
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| EvaluateError::FolderName(folder.to_owned()))?;
    Ok(match name.rsplit_once('_') {
        Some((stem, run))
            if !stem.is_empty() && !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit()) =>
        {
            stem.to_owned()
        }
        _ => name.to_owned(),
    })
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, EvaluateError> {
    if !dir.is_dir() {
        return Err(EvaluateError::MissingFolder(dir.to_owned()));
    }
    let read = |source| EvaluateError::Read {
        path: dir.to_owned(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.path()).map_err(read))
        .collect()
}

/// The traces (`*.txt`) of a folder, in file-name order.
fn read_folder(dir: &Path) -> Result<Vec<Vec<u32>>, EvaluateError> {
    let mut files: Vec<PathBuf> = list(dir)?
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt"))
        .collect();
    if files.is_empty() {
        return Err(EvaluateError::NoTraces(dir.to_owned()));
    }
    files.sort();
    files.iter().map(|path| read_trace(path)).collect()
}

/// One trace file: syscall numbers separated by white space.
pub fn read_trace(path: &Path) -> Result<Vec<u32>, EvaluateError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvaluateError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut calls = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for token in line.split_ascii_whitespace() {
            let call = token
                .parse::<u32>()
                .map_err(|_| EvaluateError::NotASyscall {
                    path: path.to_owned(),
                    line: number + 1,
                    token: token.to_owned(),
                })?;
            calls.push(call);
        }
    }
    if calls.is_empty() {
        return Err(EvaluateError::EmptyTrace(path.to_owned()));
    }
    Ok(calls)
}

/// The anomaly scorer's view of a trace set: feature rows of the training
/// traces (cross-fitted) and of the test traces (against all training),
/// and the STIDE novelty of each, as the service computes them.
pub struct ScorerFeatures {
    pub train: Array2<f32>,
    pub test: Array2<f32>,
    pub train_novelty: Vec<f64>,
    pub test_novelty: Vec<f64>,
}

impl ScorerFeatures {
    pub fn of(set: &TraceSet) -> Self {
        let spec = FeatureSpec::traces();
        let window = |trace: &Vec<u32>| WindowObs {
            calls: trace.clone(),
            ..WindowObs::default()
        };
        let training: Vec<WindowObs> = set.training.iter().map(window).collect();
        let refs: Vec<&WindowObs> = training.iter().collect();
        let baseline = Baseline::learn(&spec, refs.iter().copied());
        let featurizer = Featurizer::new(spec.clone());
        let (train, train_novelty) =
            cross_fitted_rows(&spec, &featurizer, &refs, Folds::Interleaved);
        let tests: Vec<WindowObs> = set.test().map(window).collect();
        let mut test = Array2::<f32>::zeros((tests.len(), featurizer.width()));
        let mut test_novelty = Vec::with_capacity(tests.len());
        for (i, trace) in tests.iter().enumerate() {
            let row = featurizer.row(&baseline, trace);
            test.row_mut(i).assign(&ArrayView1::from(&row));
            test_novelty.push(baseline.stide(&spec, &trace.calls));
        }
        Self {
            train,
            test,
            train_novelty,
            test_novelty,
        }
    }
}

/// Detection quality of one ranking of the test traces (higher is more
/// anomalous).
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// ROC AUC, validation normals against all attacks.
    pub auc: f64,
    /// Detection rate at each of [`FPRS`] (thresholds from the validation normals).
    pub dr: [f64; 3],
    /// Per attack family: AUC against all validation normals, and the
    /// detection rate at the overall thresholds.
    pub family: BTreeMap<String, (f64, [f64; 3])>,
}

impl Detection {
    /// `scores` holds the validation normals first, then the attacks with
    /// their `families`.
    pub fn of(scores: &[f64], n_normal: usize, families: &[String]) -> Self {
        let (normal, attack) = scores.split_at(n_normal.min(scores.len()));
        let thresholds = FPRS.map(|fpr| threshold(normal, fpr));
        let detected = |attack: &[f64]| thresholds.map(|t| share_above(attack, t));
        let mut by_family: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (score, family) in attack.iter().zip(families) {
            by_family.entry(family.clone()).or_default().push(*score);
        }
        let family = by_family
            .into_iter()
            .map(|(name, s)| (name, (auc(normal, &s), detected(&s))))
            .collect();
        Self {
            auc: auc(normal, attack),
            dr: detected(attack),
            family,
        }
    }
}

fn share_above(values: &[f64], threshold: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|&&v| v > threshold).count() as f64 / values.len() as f64
}

/// ROC AUC (Mann–Whitney, ties counted half); 0.5 when a side is empty.
pub fn auc(normal: &[f64], attack: &[f64]) -> f64 {
    if normal.is_empty() || attack.is_empty() {
        return 0.5;
    }
    let mut all: Vec<(f64, bool)> = normal
        .iter()
        .map(|&s| (s, false))
        .chain(attack.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ranks = midranks(&all.iter().map(|x| x.0).collect::<Vec<_>>());
    let attack_ranks: f64 = all
        .iter()
        .zip(&ranks)
        .filter(|(x, _)| x.1)
        .map(|(_, r)| r)
        .sum();
    let (na, nn) = (attack.len() as f64, normal.len() as f64);
    (attack_ranks - na * (na + 1.0) / 2.0) / (na * nn)
}

/// 1-based ranks of sorted values, ties sharing their mean rank.
pub fn midranks(sorted: &[f64]) -> Vec<f64> {
    let mut ranks = vec![0.0; sorted.len()];
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        ranks[i..=j].iter_mut().for_each(|r| *r = rank);
        i = j + 1;
    }
    ranks
}

/// The score above which at most `fpr` of the normals lie: flagging
/// `score > threshold` keeps the false-positive rate at or below `fpr`.
/// Infinite (nothing flagged) without normals.
pub fn threshold(normal: &[f64], fpr: f64) -> f64 {
    let mut sorted = normal.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * normal.len() as f64).floor() as usize;
    sorted
        .get(allowed.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::INFINITY)
}

/// One seed of the scorer as the service decides.
#[derive(Clone, Debug)]
pub struct SeedRun {
    pub seed: u64,
    /// Ranking by the anomaly ratio (forest or STIDE over its threshold).
    pub detection: Detection,
    /// The forest's score threshold (upper fence of the training scores,
    /// floored by `min_score`).
    pub score_threshold: f64,
    /// Share of validation normals and of attacks past the service's
    /// thresholds (ratio above 1): its false-positive and detection rates.
    pub operating_fpr: f64,
    pub operating_dr: f64,
    /// The forest score alone at each of [`FPRS`] of the validation
    /// normals: a `finding_min_score` above the fence that would hold
    /// that rate.
    pub score_at_fpr: [f64; 3],
}

/// The scorer beside STIDE on one trace set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub runs: Vec<SeedRun>,
    pub stide: Detection,
    /// The STIDE novelty threshold (upper fence over the training traces).
    pub novelty_threshold: f64,
    pub min_score: f64,
}

/// Evaluates the scorer (one forest per seed) and STIDE on `set`, with
/// `min_score` as the floor of the score threshold (`finding_min_score`).
pub fn evaluate(
    set: &TraceSet,
    seeds: &[u64],
    min_score: f64,
) -> Result<Evaluation, EvaluateError> {
    evaluate_features(set, &ScorerFeatures::of(set), seeds, min_score)
}

/// [`evaluate`] on features already computed (the benchmark reuses them).
pub fn evaluate_features(
    set: &TraceSet,
    features: &ScorerFeatures,
    seeds: &[u64],
    min_score: f64,
) -> Result<Evaluation, EvaluateError> {
    let n_normal = set.validation.len();
    let novelty_threshold = fence_threshold(&features.train_novelty, MIN_NOVELTY);
    let runs = seeds
        .iter()
        .map(|&seed| {
            let model = IsolationForest::params()
                .seed(seed)
                .fit(&DatasetBase::from(features.train.view()))?;
            let train_scores = anomaly(&model.score_samples(&features.train)?.to_vec());
            let test_scores = anomaly(&model.score_samples(&features.test)?.to_vec());
            let score_threshold = fence_threshold(&train_scores, min_score);
            let ratio: Vec<f64> = test_scores
                .iter()
                .zip(&features.test_novelty)
                .map(|(&s, &n)| anomaly_ratio(s, n, score_threshold, novelty_threshold))
                .collect();
            let (normal, attack) = ratio.split_at(n_normal);
            let normal_scores = &test_scores[..n_normal];
            Ok(SeedRun {
                seed,
                detection: Detection::of(&ratio, n_normal, &set.family),
                score_threshold,
                operating_fpr: share_above(normal, 1.0),
                operating_dr: share_above(attack, 1.0),
                score_at_fpr: FPRS.map(|fpr| threshold(normal_scores, fpr)),
            })
        })
        .collect::<Result<Vec<_>, EvaluateError>>()?;
    Ok(Evaluation {
        runs,
        stide: Detection::of(&features.test_novelty, n_normal, &set.family),
        novelty_threshold,
        min_score,
    })
}

/// The forest's anomaly scores from `score_samples` (higher is more anomalous).
pub fn anomaly(score_samples: &[f64]) -> Vec<f64> {
    score_samples.iter().map(|s| -s).collect()
}

/// The service's threshold over training values: their upper fence,
/// never below `floor`.
fn fence_threshold(values: &[f64], floor: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    upper_fence(&sorted).map_or(floor, |q| q.max(floor))
}

/// Mean of values (0 when empty).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample standard deviation (0 for fewer than two values).
pub fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

impl Evaluation {
    /// The report `vigil-scorer-cli evaluate` prints.
    pub fn render(&self, set: &TraceSet) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let families = set.families();
        let _ = writeln!(
            out,
            "traces: {} training, {} validation, {} attack in {} families",
            set.training.len(),
            set.validation.len(),
            set.attack.len(),
            families.len()
        );
        let seeds = self.runs.len();
        let detections: Vec<&Detection> = self.runs.iter().map(|r| &r.detection).collect();
        let _ = writeln!(
            out,
            "\n{:<30} {:>8} {:>9} {:>9} {:>10}",
            "", "ROC AUC", "DR@1%FPR", "DR@5%FPR", "DR@10%FPR"
        );
        let row = |out: &mut String, name: &str, auc: f64, dr: [f64; 3]| {
            let _ = writeln!(
                out,
                "{name:<30} {auc:>8.3} {:>9.3} {:>9.3} {:>10.3}",
                dr[0], dr[1], dr[2]
            );
        };
        let mean_of = |pick: &dyn Fn(&Detection) -> f64| {
            mean(&detections.iter().map(|d| pick(d)).collect::<Vec<_>>())
        };
        let scorer_name = format!("scorer (mean of {seeds} seeds)");
        row(
            &mut out,
            &scorer_name,
            mean_of(&|d| d.auc),
            [0, 1, 2].map(|i| mean_of(&|d| d.dr[i])),
        );
        row(
            &mut out,
            "STIDE (unseen 6-grams)",
            self.stide.auc,
            self.stide.dr,
        );
        let aucs: Vec<f64> = detections.iter().map(|d| d.auc).collect();
        let _ = writeln!(out, "scorer AUC across seeds: sd {:.3}", std_dev(&aucs));

        let _ = writeln!(out, "\nper family: scorer | STIDE");
        for family in families.keys() {
            let pick = |d: &Detection| d.family.get(family).copied().unwrap_or((0.5, [0.0; 3]));
            let ours = (
                mean_of(&|d| pick(d).0),
                [0, 1, 2].map(|i| mean_of(&|d| pick(d).1[i])),
            );
            let stide = pick(&self.stide);
            row(&mut out, &format!("  {family} (scorer)"), ours.0, ours.1);
            row(&mut out, &format!("  {family} (STIDE)"), stide.0, stide.1);
        }

        let pick_run = |f: fn(&SeedRun) -> f64| mean(&self.runs.iter().map(f).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "\nat the service's thresholds (finding_min_score {:.2}): score threshold {:.3}, \
             novelty threshold {:.3}; false positives {:.3}, detected {:.3}",
            self.min_score,
            pick_run(|r| r.score_threshold),
            self.novelty_threshold,
            pick_run(|r| r.operating_fpr),
            pick_run(|r| r.operating_dr),
        );
        let at = [0, 1, 2].map(|i| {
            mean(
                &self
                    .runs
                    .iter()
                    .map(|r| r.score_at_fpr[i])
                    .collect::<Vec<_>>(),
            )
        });
        let _ = writeln!(
            out,
            "forest score of the validation normals at 1/5/10 % false positives: {:.3} / {:.3} / {:.3}",
            at[0], at[1], at[2]
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(auc(&[0.0, 1.0], &[2.0, 3.0]), 1.0);
        assert_eq!(auc(&[2.0, 3.0], &[0.0, 1.0]), 0.0);
        assert_eq!(auc(&[1.0, 1.0], &[1.0]), 0.5);
        assert_eq!(auc(&[0.0, 2.0], &[1.0]), 0.5);
    }

    #[test]
    fn threshold_keeps_the_false_positive_rate() {
        let normal: Vec<f64> = (0..100).map(f64::from).collect();
        let t = threshold(&normal, 0.05);
        assert_eq!(normal.iter().filter(|&&s| s > t).count(), 5);
        // Ties at the threshold are not flagged.
        let tied = vec![0.0; 100];
        assert_eq!(share_above(&tied, threshold(&tied, 0.1)), 0.0);
        assert_eq!(threshold(&[], 0.1), f64::INFINITY);
    }

    #[test]
    fn families_drop_the_run_number_only() {
        let name = |n: &str| family_of(Path::new(n)).expect("name");
        assert_eq!(name("Hydra_FTP_3"), "Hydra_FTP");
        assert_eq!(name("Web_Shell"), "Web_Shell");
        assert_eq!(name("_7"), "_7");
    }
}
