//! The isolation forest on ADFA-LD, against scikit-learn's IsolationForest
//! on the identical feature matrices, in the same run.
//!
//! Loading, the full scorer's features and decision, STIDE and the detection
//! figures are `vigil_anomaly_scorer::evaluate`, the code behind
//! `vigil-scorer-cli evaluate DIR`; this benchmark adds the official split's
//! checks, the other feature sets and the comparison with scikit-learn.
//!
//! Data: `$VIGIL_ADFA_LD`, else `../shared/datasets/adfa-ld` next to the
//! repository (read in place, never copied). A missing or incomplete
//! dataset is an error.
//!
//! Protocol (the official split): everything learnt comes from
//! Training_Data_Master (833 normal traces) only; Validation_Data_Master
//! (4,372 normal) and Attack_Data_Master (746 attacks, six families named by
//! their folders) are only scored. Nothing is tuned on attack traces: the
//! feature definitions and forest settings below are fixed, scikit-learn's
//! defaults. Reported: ROC AUC and the detection rate at 1 %, 5 % and 10 %
//! false-positive rate (threshold from the validation normals), overall and
//! per attack family, for seeds 0–4 (mean, standard deviation, min, max).
//!
//! Feature sets, one row per trace:
//! * `frequency`: relative frequency of each syscall seen in training; the
//!   known chance-level result for an isolation forest.
//! * `novelty`: for k = 2…10 the share of the trace's k-grams never seen in
//!   training and their mean rarity, ln((N+1)/(df+1)) / ln(N+1) with df the
//!   number of training traces holding the k-gram (0 common … 1 unseen),
//!   plus ln(1 + length): 19 features. Training rows are cross-fitted: a
//!   training trace is described against the k-grams of the other four of
//!   five folds, or every training row would look perfectly familiar.
//! * `full_scorer`: the anomaly scorer's own features
//!   (`vigil_anomaly_scorer::features`): the novelty set plus the share of
//!   never-seen syscalls and the syscall-mix distance (one column; it was a
//!   column per syscall until the run that gave AUC 0.727, see the README),
//!   cross-fitted the same way
//!   (interleaved folds: ADFA-LD traces are independent; the service uses
//!   contiguous folds for its overlapping windows).
//!   Also evaluated as the service decides (`full scorer: IF or STIDE`): the
//!   forest score and STIDE novelty each over its threshold from the
//!   cross-fitted training rows, the larger ranking the trace.
//!
//! Scorers: our forest and scikit-learn's (100 trees, float32 matrices,
//! timed on one thread each and again on all cores each: scikit-learn with
//! n_jobs for fit and joblib's threading backend for score_samples; every
//! time is the median over the seeds of one fit and one score of the whole
//! test matrix, measured the same way on both sides), the same at
//! 1,000 trees as a tighter parity check (AUC and Spearman correlation of
//! the seed-averaged scores), and STIDE: the share of a trace's 6-grams
//! never seen in training.
//!
//! `VIGIL_ADFA_LD_WORK=dir` keeps the matrices (`.npy`) and scikit-learn's
//! scores there instead of in a temporary folder.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use linfa::prelude::*;
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vigil_anomaly_scorer::evaluate::{
    self as scorer_eval, Detection, ScorerFeatures, TraceSet, anomaly, mean, midranks, std_dev,
};
use vigil_anomaly_scorer::scorer::DEFAULT_MIN_SCORE;
use vigil_bench::{Report, results_path};
use vigil_isolation_forest::IsolationForest;

const SEEDS: [u64; 5] = [0, 1, 2, 3, 4];
/// Labels of the evaluation's `FPRS` (1, 5 and 10 %) in result names.
const FPR_LABELS: [&str; 3] = ["1pct", "5pct", "10pct"];
const NOVELTY_K: std::ops::RangeInclusive<usize> = 2..=10;
const FOLDS: usize = 5;
const TREES: usize = 100;
const PARITY_TREES: usize = 1000;
/// Test rows scored one per call, for the streaming latency.
const SINGLE_ROWS: usize = 200;
const SKLEARN_REQUIREMENT: &str = "scikit-learn==1.9.1";
const EXPECTED: [(&str, usize); 3] = [
    ("Training_Data_Master", 833),
    ("Validation_Data_Master", 4372),
    ("Attack_Data_Master", 746),
];

fn main() -> Result<()> {
    let dir = dataset_dir()?;
    let data = Dataset::load(&dir)?;
    let python = std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".into());
    ensure_sklearn(&python)?;
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut report = Report::default();
    report.add("adfa_ld.traces.training", data.train.len() as f64, "traces");
    report.add(
        "adfa_ld.traces.validation",
        data.validation.len() as f64,
        "traces",
    );
    report.add("adfa_ld.traces.attack", data.attack.len() as f64, "traces");

    let started = Instant::now();
    let scorer_features = ScorerFeatures::of(&data.set);
    let full = FeatureSet {
        name: "full_scorer",
        train: scorer_features.train.clone(),
        test: scorer_features.test.clone(),
    };
    let sets = [frequency_features(&data), novelty_features(&data), full];
    eprintln!("features: {:.2} s", started.elapsed().as_secs_f64());

    // scikit-learn on the identical matrices, one Python process for all jobs.
    let temp = tempfile::tempdir()?;
    let work = match std::env::var_os("VIGIL_ADFA_LD_WORK") {
        // Keeps the matrices and scikit-learn's scores, for a closer look.
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            PathBuf::from(dir)
        }
        None => temp.path().to_owned(),
    };
    let mut jobs = Vec::new();
    for set in &sets {
        let train = work.join(format!("{}_train.npy", set.name));
        let test = work.join(format!("{}_test.npy", set.name));
        write_npy(&train, &set.train)?;
        write_npy(&test, &set.test)?;
        for trees in [TREES, PARITY_TREES] {
            let single_rows = if trees == TREES { SINGLE_ROWS } else { 0 };
            jobs.push(Job {
                name: job_name(set.name, trees),
                train: train.clone(),
                test: test.clone(),
                seeds: SEEDS.to_vec(),
                n_estimators: trees,
                single_rows,
                all_cores: trees == TREES,
            });
        }
    }
    let sklearn = run_sklearn(&python, &work, &jobs)?;
    eprintln!(
        "scikit-learn {} (numpy {}), {} jobs",
        sklearn.sklearn,
        sklearn.numpy,
        jobs.len()
    );

    let labels = &data.set.family;
    let n_normal = data.validation.len();
    let mut summary = Vec::new();
    for set in &sets {
        let ours = fit_and_score(set, TREES, &single)?;
        let theirs = sklearn.job(&job_name(set.name, TREES))?;
        let ours_eval: Vec<Detection> = ours
            .iter()
            .map(|run| Detection::of(&anomaly(&run.scores), n_normal, labels))
            .collect();
        let theirs_eval: Vec<Detection> = theirs
            .runs
            .iter()
            .map(|run| Detection::of(&anomaly(&run.scores), n_normal, labels))
            .collect();
        report_detection(
            &mut report,
            &format!("adfa_ld.{}.if", set.name),
            &ours_eval,
            Some(&theirs_eval),
        );
        let diff = (mean(&aucs(&ours_eval)) - mean(&aucs(&theirs_eval))).abs();
        report.add(
            &format!("adfa_ld.{}.if.auc_abs_diff_vs_sklearn", set.name),
            diff,
            "auc",
        );
        // What seed noise alone makes of that difference: the standard error
        // of a difference of two 5-seed means.
        let se = ((std_dev(&aucs(&ours_eval)).powi(2) + std_dev(&aucs(&theirs_eval)).powi(2))
            / SEEDS.len() as f64)
            .sqrt();
        report.add(
            &format!("adfa_ld.{}.if.auc_diff_standard_error", set.name),
            se,
            "auc",
        );
        summary.push((format!("{} IF (ours)", set.name), ours_eval));
        summary.push((format!("{} IF (scikit-learn)", set.name), theirs_eval));

        // Timing, one thread each; ours also on the default pool, which
        // must give the same scores.
        let fit_ours = median(ours.iter().map(|r| r.fit_seconds).collect());
        let score_ours = median(ours.iter().map(|r| r.score_seconds).collect());
        let fit_theirs = median(theirs.runs.iter().map(|r| r.fit_seconds).collect());
        let score_theirs = median(theirs.runs.iter().map(|r| r.score_seconds).collect());
        report.add_with_baseline(
            &format!("adfa_ld.{}.fit_ms_1thread", set.name),
            fit_ours * 1e3,
            "ms",
            fit_theirs * 1e3,
        );
        report.add_with_baseline(
            &format!("adfa_ld.{}.score_ms_1thread", set.name),
            score_ours * 1e3,
            "ms",
            score_theirs * 1e3,
        );
        report.add(
            &format!("adfa_ld.{}.fit_speedup_vs_sklearn_1thread", set.name),
            fit_theirs / fit_ours,
            "x",
        );
        report.add(
            &format!("adfa_ld.{}.score_speedup_vs_sklearn_1thread", set.name),
            score_theirs / score_ours,
            "x",
        );
        let pooled = fit_and_score_pooled(set, TREES)?;
        for (a, b) in ours.iter().zip(&pooled) {
            ensure!(
                a.scores == b.scores,
                "seed {}: scores differ between 1 and {} threads",
                a.seed,
                rayon::current_num_threads()
            );
        }
        // All cores against scikit-learn on as many (n_jobs for fit, joblib
        // threads for score_samples): a speed-up against its one thread
        // would credit us with the second core.
        let threads = rayon::current_num_threads();
        let fit_pooled = median(pooled.iter().map(|r| r.fit_seconds).collect());
        let score_pooled = median(pooled.iter().map(|r| r.score_seconds).collect());
        let all_cores = |pick: fn(&SklearnRun) -> Option<f64>| -> Result<f64> {
            let times = theirs.runs.iter().map(pick).collect::<Option<Vec<f64>>>();
            Ok(median(
                times.context("scikit-learn all-core timing missing")?,
            ))
        };
        let fit_theirs_all = all_cores(|r| r.fit_seconds_all_cores)?;
        let score_theirs_all = all_cores(|r| r.score_seconds_all_cores)?;
        let cores = theirs.runs.first().and_then(|r| r.cores).unwrap_or(0);
        ensure!(
            cores == threads,
            "scikit-learn timed on {cores} cores, ours on {threads} threads"
        );
        report.add_with_baseline(
            &format!("adfa_ld.{}.fit_ms_{threads}threads", set.name),
            fit_pooled * 1e3,
            "ms",
            fit_theirs_all * 1e3,
        );
        report.add_with_baseline(
            &format!("adfa_ld.{}.score_ms_{threads}threads", set.name),
            score_pooled * 1e3,
            "ms",
            score_theirs_all * 1e3,
        );
        report.add(
            &format!(
                "adfa_ld.{}.fit_speedup_vs_sklearn_{threads}threads",
                set.name
            ),
            fit_theirs_all / fit_pooled,
            "x",
        );
        report.add(
            &format!(
                "adfa_ld.{}.score_speedup_vs_sklearn_{threads}threads",
                set.name
            ),
            score_theirs_all / score_pooled,
            "x",
        );
        report.add(
            &format!("adfa_ld.{}.test_rows_per_second_1thread", set.name),
            set.test.nrows() as f64 / score_ours,
            "rows/s",
        );
        if set.name != "frequency" {
            let model = IsolationForest::params()
                .seed(0)
                .fit(&DatasetBase::from(set.train.view()))?;
            let rows = set.test.nrows().min(SINGLE_ROWS);
            let started = Instant::now();
            for row in set.test.rows().into_iter().take(rows) {
                std::hint::black_box(model.score_sample(&row)?);
            }
            let ours_row = started.elapsed().as_secs_f64() / rows as f64;
            let theirs_row = theirs
                .single_row_seconds
                .context("scikit-learn single-row timing missing")?;
            report.add_with_baseline(
                &format!("adfa_ld.{}.score_us_per_single_row", set.name),
                ours_row * 1e6,
                "us",
                theirs_row * 1e6,
            );
            report.add(
                &format!("adfa_ld.{}.single_row_speedup_vs_sklearn", set.name),
                theirs_row / ours_row,
                "x",
            );
        }

        // Parity at 1,000 trees: less forest noise, so the AUCs and the
        // seed-averaged scores must agree closely.
        let ours_big = fit_and_score_pooled(set, PARITY_TREES)?;
        let theirs_big = sklearn.job(&job_name(set.name, PARITY_TREES))?;
        let ours_big_auc: Vec<f64> = ours_big
            .iter()
            .map(|r| Detection::of(&anomaly(&r.scores), n_normal, labels).auc)
            .collect();
        let theirs_big_auc: Vec<f64> = theirs_big
            .runs
            .iter()
            .map(|r| Detection::of(&anomaly(&r.scores), n_normal, labels).auc)
            .collect();
        report.add_with_baseline(
            &format!("adfa_ld.{}.if1000.auc", set.name),
            mean(&ours_big_auc),
            "auc",
            mean(&theirs_big_auc),
        );
        report.add(
            &format!("adfa_ld.{}.if1000.auc_abs_diff_vs_sklearn", set.name),
            (mean(&ours_big_auc) - mean(&theirs_big_auc)).abs(),
            "auc",
        );
        let se = ((std_dev(&ours_big_auc).powi(2) + std_dev(&theirs_big_auc).powi(2))
            / SEEDS.len() as f64)
            .sqrt();
        report.add(
            &format!("adfa_ld.{}.if1000.auc_diff_standard_error", set.name),
            se,
            "auc",
        );
        let ours_avg = average_scores(ours_big.iter().map(|r| r.scores.as_slice()));
        let theirs_avg = average_scores(theirs_big.runs.iter().map(|r| r.scores.as_slice()));
        report.add(
            &format!("adfa_ld.{}.if1000.spearman_vs_sklearn", set.name),
            spearman(&ours_avg, &theirs_avg),
            "rho",
        );
        let mean_abs: f64 = ours_avg
            .iter()
            .zip(&theirs_avg)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / ours_avg.len() as f64;
        report.add(
            &format!("adfa_ld.{}.if1000.mean_abs_score_diff_vs_sklearn", set.name),
            mean_abs,
            "score",
        );
    }

    let evaluation =
        scorer_eval::evaluate_features(&data.set, &scorer_features, &SEEDS, DEFAULT_MIN_SCORE)?;
    let decision: Vec<Detection> = evaluation
        .runs
        .iter()
        .map(|run| run.detection.clone())
        .collect();
    let points: Vec<(f64, f64)> = evaluation
        .runs
        .iter()
        .map(|run| (run.operating_fpr, run.operating_dr))
        .collect();
    report_detection(&mut report, "adfa_ld.full_scorer.decision", &decision, None);
    let fpr: Vec<f64> = points.iter().map(|p| p.0).collect();
    let dr: Vec<f64> = points.iter().map(|p| p.1).collect();
    report.add(
        "adfa_ld.full_scorer.decision.operating_fpr",
        mean(&fpr),
        "share",
    );
    report.add(
        "adfa_ld.full_scorer.decision.operating_dr",
        mean(&dr),
        "share",
    );
    eprintln!(
        "full scorer at the service's own thresholds: FPR {:.3}±{:.3}, DR {:.3}±{:.3}",
        mean(&fpr),
        std_dev(&fpr),
        mean(&dr),
        std_dev(&dr)
    );
    summary.push(("full scorer: IF or STIDE".into(), decision));

    let stide_eval = evaluation.stide.clone();
    report_detection(
        &mut report,
        "adfa_ld.stide6",
        std::slice::from_ref(&stide_eval),
        None,
    );
    summary.push(("STIDE (unseen 6-grams)".into(), vec![stide_eval]));
    print_summary(&summary);
    report.write(&results_path())?;
    Ok(())
}

// ---------------------------------------------------------------- data

/// ADFA-LD as the scorer's evaluation reads it, plus the traces as
/// 10-bit syscall numbers for this benchmark's own k-gram keys.
struct Dataset {
    set: TraceSet,
    train: Vec<Vec<u16>>,
    validation: Vec<Vec<u16>>,
    attack: Vec<Vec<u16>>,
}

fn dataset_dir() -> Result<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("repository root")?;
    let dir = match std::env::var_os("VIGIL_ADFA_LD") {
        Some(dir) => PathBuf::from(dir),
        None => repo.join("../shared/datasets/adfa-ld"),
    };
    ensure!(
        dir.is_dir(),
        "ADFA-LD not found at {}: set VIGIL_ADFA_LD to the folder that holds Training_Data_Master, Validation_Data_Master and Attack_Data_Master",
        dir.display()
    );
    Ok(dir)
}

impl Dataset {
    /// Loads with the scorer's loader, then checks the official split.
    fn load(dir: &Path) -> Result<Self> {
        let set = TraceSet::load(dir)?;
        let per_family = set.families();
        for ((folder, expected), got) in
            EXPECTED
                .iter()
                .zip([set.training.len(), set.validation.len(), set.attack.len()])
        {
            ensure!(
                got == *expected,
                "{} holds {got} traces, the official split has {expected}",
                dir.join(folder).display()
            );
        }
        ensure!(
            per_family.len() == 6,
            "expected 6 attack families, found {per_family:?}"
        );
        eprintln!(
            "ADFA-LD at {}: {} training, {} validation, {} attack traces {per_family:?}",
            dir.display(),
            set.training.len(),
            set.validation.len(),
            set.attack.len()
        );
        Ok(Self {
            train: narrow(&set.training)?,
            validation: narrow(&set.validation)?,
            attack: narrow(&set.attack)?,
            set,
        })
    }

    fn test(&self) -> impl Iterator<Item = &Vec<u16>> {
        self.validation.iter().chain(&self.attack)
    }
}

/// Traces as 10-bit syscall numbers (the k-gram keys pack 10 bits a call).
fn narrow(traces: &[Vec<u32>]) -> Result<Vec<Vec<u16>>> {
    traces
        .iter()
        .map(|trace| {
            trace
                .iter()
                .map(|&call| match u16::try_from(call) {
                    Ok(call) if call < 1024 => Ok(call),
                    _ => bail!("syscall number {call} does not fit the 10-bit k-gram keys"),
                })
                .collect()
        })
        .collect()
}

// ------------------------------------------------------------ features

/// A feature matrix: training rows, then test rows (validation, attack).
struct FeatureSet {
    name: &'static str,
    train: Array2<f32>,
    test: Array2<f32>,
}

fn frequency_features(data: &Dataset) -> FeatureSet {
    let vocabulary: Vec<u16> = data
        .train
        .iter()
        .flatten()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let column: HashMap<u16, usize> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, i))
        .collect();
    let rows = |traces: Vec<&Vec<u16>>| {
        let mut m = Array2::<f32>::zeros((traces.len(), vocabulary.len()));
        for (i, trace) in traces.iter().enumerate() {
            for call in trace.iter() {
                if let Some(&j) = column.get(call) {
                    m[[i, j]] += 1.0;
                }
            }
            let length = trace.len() as f32;
            m.row_mut(i).mapv_inplace(|count| count / length);
        }
        m
    };
    FeatureSet {
        name: "frequency",
        train: rows(data.train.iter().collect()),
        test: rows(data.test().collect()),
    }
}

/// Cheap hashing for k-gram keys (the default SipHash dominates otherwise).
#[derive(Default)]
struct GramHasher(u64);

impl Hasher for GramHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser, so that low and high bits are both mixed.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type GramSet = HashSet<u128, BuildHasherDefault<GramHasher>>;
type GramCounts = HashMap<u128, u32, BuildHasherDefault<GramHasher>>;

/// The k-grams of a trace as keys (10 bits per syscall, k ≤ 12).
fn grams(trace: &[u16], k: usize) -> impl Iterator<Item = u128> + '_ {
    trace.windows(k).map(|w| {
        w.iter()
            .fold(0u128, |key, &call| (key << 10) | u128::from(call))
    })
}

/// What a set of normal traces says about k-grams: in how many traces each occurs.
struct NgramBaseline {
    traces: usize,
    /// Document frequency per k (index k).
    df: Vec<GramCounts>,
}

impl NgramBaseline {
    fn learn(traces: &[&Vec<u16>], max_k: usize) -> Self {
        let df = (0..=max_k)
            .into_par_iter()
            .map(|k| {
                let mut df = GramCounts::default();
                if k == 0 {
                    return df;
                }
                for trace in traces {
                    let distinct: GramSet = grams(trace, k).collect();
                    for g in distinct {
                        *df.entry(g).or_default() += 1;
                    }
                }
                df
            })
            .collect();
        Self {
            traces: traces.len(),
            df,
        }
    }

    /// (share of unseen k-grams, mean rarity) of a trace.
    fn novelty(&self, trace: &[u16], k: usize) -> (f64, f64) {
        let top = ((self.traces + 1) as f64).ln();
        let (mut total, mut unseen, mut rarity) = (0usize, 0usize, 0.0);
        for g in grams(trace, k) {
            let df = self.df[k].get(&g).copied().unwrap_or(0);
            total += 1;
            unseen += usize::from(df == 0);
            rarity += ((self.traces + 1) as f64 / f64::from(df + 1)).ln() / top;
        }
        if total == 0 {
            (0.0, 0.0)
        } else {
            (unseen as f64 / total as f64, rarity / total as f64)
        }
    }

    fn features(&self, trace: &[u16]) -> Vec<f32> {
        let mut row = Vec::with_capacity(2 * NOVELTY_K.count() + 1);
        for k in NOVELTY_K {
            let (unseen, rarity) = self.novelty(trace, k);
            row.push(unseen as f32);
            row.push(rarity as f32);
        }
        row.push((1.0 + trace.len() as f64).ln() as f32);
        row
    }
}

fn novelty_features(data: &Dataset) -> FeatureSet {
    let max_k = *NOVELTY_K.end();
    let width = 2 * NOVELTY_K.count() + 1;
    // Training rows: each against the baseline of the other folds.
    let mut train = Array2::<f32>::zeros((data.train.len(), width));
    for fold in 0..FOLDS {
        let rest: Vec<&Vec<u16>> = data
            .train
            .iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS != fold)
            .map(|(_, t)| t)
            .collect();
        let baseline = NgramBaseline::learn(&rest, max_k);
        let rows: Vec<(usize, Vec<f32>)> = data
            .train
            .par_iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS == fold)
            .map(|(i, t)| (i, baseline.features(t)))
            .collect();
        for (i, row) in rows {
            train.row_mut(i).assign(&ndarray::ArrayView1::from(&row));
        }
    }
    // Test rows: against the whole training set.
    let all: Vec<&Vec<u16>> = data.train.iter().collect();
    let baseline = NgramBaseline::learn(&all, max_k);
    let test_rows: Vec<Vec<f32>> = data
        .test()
        .collect::<Vec<_>>()
        .par_iter()
        .map(|t| baseline.features(t))
        .collect();
    let mut test = Array2::<f32>::zeros((test_rows.len(), width));
    for (i, row) in test_rows.iter().enumerate() {
        test.row_mut(i).assign(&ndarray::ArrayView1::from(row));
    }
    FeatureSet {
        name: "novelty",
        train,
        test,
    }
}

// ----------------------------------------------------------- the forests

struct Run {
    seed: u64,
    fit_seconds: f64,
    score_seconds: f64,
    /// score_samples of the test rows (lower is more anomalous).
    scores: Vec<f64>,
}

fn fit_and_score(set: &FeatureSet, trees: usize, pool: &rayon::ThreadPool) -> Result<Vec<Run>> {
    pool.install(|| fit_and_score_pooled(set, trees))
}

/// Fits and scores once per seed on the current rayon pool.
fn fit_and_score_pooled(set: &FeatureSet, trees: usize) -> Result<Vec<Run>> {
    SEEDS
        .iter()
        .map(|&seed| {
            let started = Instant::now();
            let model = IsolationForest::params()
                .n_estimators(trees)
                .seed(seed)
                .fit(&DatasetBase::from(set.train.view()))?;
            let fit_seconds = started.elapsed().as_secs_f64();
            let started = Instant::now();
            let scores = model.score_samples(&set.test)?;
            let score_seconds = started.elapsed().as_secs_f64();
            Ok(Run {
                seed,
                fit_seconds,
                score_seconds,
                scores: scores.to_vec(),
            })
        })
        .collect()
}

fn average_scores<'a>(runs: impl Iterator<Item = &'a [f64]>) -> Vec<f64> {
    let mut sum: Vec<f64> = Vec::new();
    let mut n = 0.0;
    for run in runs {
        if sum.is_empty() {
            sum = vec![0.0; run.len()];
        }
        sum.iter_mut().zip(run).for_each(|(s, v)| *s += v);
        n += 1.0;
    }
    sum.into_iter().map(|s| s / n).collect()
}

// -------------------------------------------------------- scikit-learn

#[derive(Serialize)]
struct Job {
    name: String,
    train: PathBuf,
    test: PathBuf,
    seeds: Vec<u64>,
    n_estimators: usize,
    single_rows: usize,
    /// Also time scikit-learn on every core (timing only).
    all_cores: bool,
}

fn job_name(set: &str, trees: usize) -> String {
    format!("{set}_{trees}")
}

#[derive(Deserialize)]
struct SklearnOutput {
    sklearn: String,
    numpy: String,
    jobs: HashMap<String, SklearnJob>,
}

#[derive(Deserialize)]
struct SklearnJob {
    runs: Vec<SklearnRun>,
    single_row_seconds: Option<f64>,
}

#[derive(Deserialize)]
struct SklearnRun {
    fit_seconds: f64,
    score_seconds: f64,
    scores: Vec<f64>,
    /// Cores of the all-core timing, when the job asked for it.
    cores: Option<usize>,
    fit_seconds_all_cores: Option<f64>,
    score_seconds_all_cores: Option<f64>,
}

impl SklearnOutput {
    fn job(&self, name: &str) -> Result<&SklearnJob> {
        self.jobs
            .get(name)
            .with_context(|| format!("scikit-learn did not run job {name}"))
    }
}

/// Installs the pinned scikit-learn with pip when it is missing or another version.
fn ensure_sklearn(python: &str) -> Result<()> {
    let wanted = SKLEARN_REQUIREMENT.rsplit("==").next().unwrap_or_default();
    let installed = || {
        Command::new(python)
            .args(["-c", "import sklearn; print(sklearn.__version__)"])
            .output()
            .map(|out| {
                out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == wanted
            })
            .unwrap_or(false)
    };
    if installed() {
        return Ok(());
    }
    eprintln!("installing {SKLEARN_REQUIREMENT} with pip");
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            SKLEARN_REQUIREMENT,
        ])
        .status()
        .with_context(|| format!("running {python} -m pip"))?;
    ensure!(
        status.success() && installed(),
        "could not install {SKLEARN_REQUIREMENT} for {python}"
    );
    Ok(())
}

fn run_sklearn(python: &str, work: &Path, jobs: &[Job]) -> Result<SklearnOutput> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/adfa_ld/sklearn_iforest.py");
    let jobs_path = work.join("jobs.json");
    let out_path = work.join("sklearn.json");
    std::fs::write(&jobs_path, serde_json::to_vec(jobs)?)?;
    let started = Instant::now();
    let status = Command::new(python)
        .arg(&script)
        .arg(&jobs_path)
        .arg(&out_path)
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .status()
        .with_context(|| format!("running {python} {}", script.display()))?;
    ensure!(status.success(), "{} failed: {status}", script.display());
    eprintln!(
        "scikit-learn jobs: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(serde_json::from_slice(&std::fs::read(&out_path)?)?)
}

/// Writes a float32 C-order `.npy` (format 1.0).
fn write_npy(path: &Path, m: &Array2<f32>) -> Result<()> {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.nrows(),
        m.ncols()
    );
    let pad = (64 - (10 + dict.len() + 1) % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * m.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&u16::try_from(header.len())?.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in m.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

// ------------------------------------------------------------- metrics

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let rank = |v: &[f64]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let sorted: Vec<f64> = order.iter().map(|&i| v[i]).collect();
        let mid = midranks(&sorted);
        let mut ranks = vec![0.0; v.len()];
        for (k, &i) in order.iter().enumerate() {
            ranks[i] = mid[k];
        }
        ranks
    };
    let (ra, rb) = (rank(a), rank(b));
    let (ma, mb) = (mean(&ra), mean(&rb));
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn aucs(evals: &[Detection]) -> Vec<f64> {
    evals.iter().map(|e| e.auc).collect()
}

/// Reports AUC (mean, spread) and detection rates, overall and per family;
/// with scikit-learn's figures as the same-run baseline where given.
fn report_detection(
    report: &mut Report,
    prefix: &str,
    ours: &[Detection],
    baseline: Option<&[Detection]>,
) {
    let add = |report: &mut Report, name: String, unit: &str, pick: &dyn Fn(&Detection) -> f64| {
        let value = mean(&ours.iter().map(pick).collect::<Vec<_>>());
        match baseline {
            Some(b) => report.add_with_baseline(
                &name,
                value,
                unit,
                mean(&b.iter().map(pick).collect::<Vec<_>>()),
            ),
            None => report.add(&name, value, unit),
        }
    };
    add(report, format!("{prefix}.auc"), "auc", &|e| e.auc);
    if ours.len() > 1 {
        let a = aucs(ours);
        report.add(&format!("{prefix}.auc_std"), std_dev(&a), "auc");
        report.add(
            &format!("{prefix}.auc_min"),
            a.iter().copied().fold(f64::INFINITY, f64::min),
            "auc",
        );
        report.add(
            &format!("{prefix}.auc_max"),
            a.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "auc",
        );
        if let Some(b) = baseline {
            let b = aucs(b);
            report.add(&format!("{prefix}.sklearn_auc_std"), std_dev(&b), "auc");
            report.add(
                &format!("{prefix}.sklearn_auc_min"),
                b.iter().copied().fold(f64::INFINITY, f64::min),
                "auc",
            );
            report.add(
                &format!("{prefix}.sklearn_auc_max"),
                b.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "auc",
            );
        }
    }
    for (i, label) in FPR_LABELS.iter().enumerate() {
        add(
            report,
            format!("{prefix}.dr_at_fpr_{label}"),
            "share",
            &|e| e.dr[i],
        );
        if ours.len() > 1 {
            report.add(
                &format!("{prefix}.dr_at_fpr_{label}_std"),
                std_dev(&ours.iter().map(|e| e.dr[i]).collect::<Vec<_>>()),
                "share",
            );
        }
    }
    let families: Vec<String> = ours[0].family.keys().cloned().collect();
    for family in families {
        add(
            report,
            format!("{prefix}.family.{family}.auc"),
            "auc",
            &|e| e.family[&family].0,
        );
        for (i, label) in FPR_LABELS.iter().enumerate() {
            add(
                report,
                format!("{prefix}.family.{family}.dr_at_fpr_{label}"),
                "share",
                &|e| e.family[&family].1[i],
            );
        }
    }
}

fn print_summary(rows: &[(String, Vec<Detection>)]) {
    eprintln!(
        "\n{:<30} {:>22} {:>13} {:>13} {:>13}",
        "scorer (seeds 0-4)", "AUC mean ± sd [min-max]", "DR@1%FPR", "DR@5%FPR", "DR@10%FPR"
    );
    for (name, evals) in rows {
        let a = aucs(evals);
        let min = a.iter().copied().fold(f64::INFINITY, f64::min);
        let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let dr = |i: usize| {
            let v: Vec<f64> = evals.iter().map(|e| e.dr[i]).collect();
            format!("{:.3}±{:.3}", mean(&v), std_dev(&v))
        };
        eprintln!(
            "{name:<30} {:.3}±{:.3} [{min:.3}-{max:.3}] {:>13} {:>13} {:>13}",
            mean(&a),
            std_dev(&a),
            dr(0),
            dr(1),
            dr(2)
        );
        let families: Vec<&String> = evals[0].family.keys().collect();
        for family in families {
            let fa: Vec<f64> = evals.iter().map(|e| e.family[family].0).collect();
            let fd = |i: usize| {
                mean(
                    &evals
                        .iter()
                        .map(|e| e.family[family].1[i])
                        .collect::<Vec<_>>(),
                )
            };
            eprintln!(
                "  {family:<28} {:.3}±{:.3}{:13} {:>13.3} {:>13.3} {:>13.3}",
                mean(&fa),
                std_dev(&fa),
                "",
                fd(0),
                fd(1),
                fd(2)
            );
        }
    }
    eprintln!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_maps_is_one() {
        let a = [1.0, 5.0, 2.0, 9.0];
        let b = [10.0, 50.0, 20.0, 90.0];
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn grams_are_distinct_keys() {
        let t = [1, 2, 3, 1, 2, 3];
        let g: Vec<u128> = grams(&t, 3).collect();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0], g[3]);
        assert_ne!(g[0], g[1]);
    }
}
