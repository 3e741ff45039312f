//! What a window of one container's events looks like to the model: a
//! fixed-width feature vector computed against the workload's baseline.
//!
//! The same code describes ADFA-LD traces in the benchmark (syscall numbers,
//! no arguments) and live windows in the service (interned syscall names plus
//! the argument-level signals the collector has); see the README for why
//! each feature is there.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// One window: the syscall sequence and what its arguments said.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowObs {
    /// Syscalls in order, as tokens (syscall numbers or interned names).
    pub calls: Vec<u32>,
    /// Paths executed.
    pub execs: Vec<String>,
    /// Peers connected to (`ip:port` or a unix path).
    pub peers: Vec<String>,
    /// Opens of sensitive paths (credentials, keys, the container runtime socket).
    pub sensitive_opens: u32,
    /// Syscalls that returned an error.
    pub failed: u32,
}

/// Which features to compute; fixed before learning, stored with the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// k-gram lengths for the sequence-novelty features.
    pub ks: Vec<usize>,
    /// k of the STIDE score (must be in `ks`).
    pub stide_k: usize,
    /// How far the window's syscall mix is from the baseline's, as one
    /// column (see [`Baseline::mix_distance`]).
    pub mix_drift: bool,
    /// The four argument-level signals (absent from ADFA-LD).
    pub arguments: bool,
}

impl FeatureSpec {
    /// What the service computes: short k-grams suit the collector's
    /// coarser event stream (not every syscall is an event).
    pub fn service() -> Self {
        Self {
            ks: (2..=6).collect(),
            stide_k: 6,
            mix_drift: true,
            arguments: true,
        }
    }

    /// The full scorer on raw syscall traces (ADFA-LD): k = 2…10.
    pub fn traces() -> Self {
        Self {
            ks: (2..=10).collect(),
            stide_k: 6,
            mix_drift: true,
            arguments: false,
        }
    }
}

/// 64-bit key of a k-gram. Collisions are possible in principle; at 2^-64
/// per pair they are far below the noise of the data.
fn gram_key(gram: &[u32]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ gram.len() as u64;
    for &call in gram {
        hash = (hash ^ u64::from(call)).wrapping_mul(0x0000_0100_0000_01b3);
        hash ^= hash >> 29;
    }
    hash
}

/// What a set of normal windows says: the k-grams they hold (in how many
/// windows each), the syscalls, the files executed and peers reached.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    pub windows: u32,
    /// Per k of the spec (same order): window frequency of each k-gram.
    df: Vec<HashMap<u64, u32>>,
    /// Syscall → number of occurrences.
    calls: HashMap<u32, u64>,
    execs: HashSet<String>,
    peers: HashSet<String>,
}

impl Baseline {
    pub fn learn<'a>(spec: &FeatureSpec, windows: impl IntoIterator<Item = &'a WindowObs>) -> Self {
        let mut baseline = Self {
            df: vec![HashMap::new(); spec.ks.len()],
            ..Self::default()
        };
        for window in windows {
            baseline.add(spec, window);
        }
        baseline
    }

    /// Adds one normal window.
    pub fn add(&mut self, spec: &FeatureSpec, window: &WindowObs) {
        self.windows += 1;
        for (i, &k) in spec.ks.iter().enumerate() {
            let distinct: HashSet<u64> = window.calls.windows(k).map(gram_key).collect();
            for key in distinct {
                *self.df[i].entry(key).or_default() += 1;
            }
        }
        for &call in &window.calls {
            *self.calls.entry(call).or_default() += 1;
        }
        self.execs.extend(window.execs.iter().cloned());
        self.peers.extend(window.peers.iter().cloned());
    }

    /// Total variation distance between the window's syscall mix and the
    /// baseline's: half the summed absolute differences of the shares, 0
    /// for the same mix, 1 for disjoint ones.
    pub fn mix_distance(&self, calls: &[u32]) -> f64 {
        let total: u64 = self.calls.values().sum();
        if calls.is_empty() || total == 0 {
            return if calls.is_empty() { 0.0 } else { 1.0 };
        }
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &call in calls {
            *counts.entry(call).or_default() += 1;
        }
        let length = calls.len() as f64;
        let share_of = |call: &u32| {
            self.calls
                .get(call)
                .map_or(0.0, |&n| n as f64 / total as f64)
        };
        let mut difference = 0.0;
        for (call, &n) in &counts {
            difference += (f64::from(n) / length - share_of(call)).abs();
        }
        // Baseline syscalls the window never made.
        for (call, &n) in &self.calls {
            if !counts.contains_key(call) {
                difference += n as f64 / total as f64;
            }
        }
        difference / 2.0
    }

    /// (share of the window's k-grams never seen, their mean rarity), with
    /// rarity ln((N+1)/(df+1)) / ln(N+1): 0 for a k-gram in every window, 1
    /// for one in none.
    pub fn novelty(&self, spec_index: usize, k: usize, calls: &[u32]) -> (f64, f64) {
        let n = f64::from(self.windows) + 1.0;
        let top = n.ln().max(f64::MIN_POSITIVE);
        let (mut total, mut unseen, mut rarity) = (0usize, 0usize, 0.0);
        for gram in calls.windows(k) {
            let df = self.df[spec_index]
                .get(&gram_key(gram))
                .copied()
                .unwrap_or(0);
            total += 1;
            unseen += usize::from(df == 0);
            rarity += (n / (f64::from(df) + 1.0)).ln() / top;
        }
        if total == 0 {
            (0.0, 0.0)
        } else {
            (unseen as f64 / total as f64, rarity / total as f64)
        }
    }

    /// STIDE: share of the window's `stide_k`-grams never seen.
    pub fn stide(&self, spec: &FeatureSpec, calls: &[u32]) -> f64 {
        spec.ks
            .iter()
            .position(|&k| k == spec.stide_k)
            .map_or(0.0, |i| self.novelty(i, spec.stide_k, calls).0)
    }
}

/// Turns windows into rows against one baseline; the columns are fixed by
/// the spec.
///
/// The syscall mix is one column, not one per syscall: the forest picks a
/// split feature uniformly at random, so a hundred frequency columns next
/// to twenty sequence ones would spend most splits on composition, which
/// alone isolates attacks no better than chance on syscall traces (see the
/// README), and would drown the sequence signal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Featurizer {
    pub spec: FeatureSpec,
}

impl Featurizer {
    pub fn new(spec: FeatureSpec) -> Self {
        Self { spec }
    }

    pub fn width(&self) -> usize {
        self.names().len()
    }

    /// Column names, in row order.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for k in &self.spec.ks {
            names.push(format!("seq.k{k}.unseen_share"));
            names.push(format!("seq.k{k}.rarity"));
        }
        names.push("seq.new_syscall_share".into());
        names.push("seq.log_length".into());
        if self.spec.mix_drift {
            names.push("mix.distance".into());
        }
        if self.spec.arguments {
            names.extend(
                [
                    "args.new_exec_share",
                    "args.new_peer_share",
                    "args.sensitive_open_share",
                    "args.failed_share",
                ]
                .map(String::from),
            );
        }
        names
    }

    /// The row of `window` against `baseline`.
    pub fn row(&self, baseline: &Baseline, window: &WindowObs) -> Vec<f32> {
        let mut row = Vec::with_capacity(2 * self.spec.ks.len() + 7);
        for (i, &k) in self.spec.ks.iter().enumerate() {
            let (unseen, rarity) = baseline.novelty(i, k, &window.calls);
            row.push(unseen as f32);
            row.push(rarity as f32);
        }
        let length = window.calls.len().max(1) as f32;
        let new_calls = window
            .calls
            .iter()
            .filter(|c| !baseline.calls.contains_key(c))
            .count();
        row.push(new_calls as f32 / length);
        row.push((1.0 + window.calls.len() as f32).ln());
        if self.spec.mix_drift {
            row.push(baseline.mix_distance(&window.calls) as f32);
        }
        if self.spec.arguments {
            let share = |new: usize, all: usize| {
                if all == 0 {
                    0.0
                } else {
                    new as f32 / all as f32
                }
            };
            let new_execs = window
                .execs
                .iter()
                .filter(|p| !baseline.execs.contains(*p))
                .count();
            let new_peers = window
                .peers
                .iter()
                .filter(|p| !baseline.peers.contains(*p))
                .count();
            row.push(share(new_execs, window.execs.len()));
            row.push(share(new_peers, window.peers.len()));
            row.push(window.sensitive_opens as f32 / length);
            row.push(window.failed as f32 / length);
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(calls: &[u32]) -> WindowObs {
        WindowObs {
            calls: calls.to_vec(),
            ..WindowObs::default()
        }
    }

    #[test]
    fn novelty_is_zero_for_known_sequences_and_one_for_new_ones() {
        let spec = FeatureSpec::traces();
        let baseline = Baseline::learn(&spec, &[window(&[1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2])]);
        assert_eq!(baseline.novelty(0, 2, &[1, 2, 3]).0, 0.0);
        assert_eq!(baseline.novelty(0, 2, &[3, 2, 1]).0, 1.0);
        // One of the two bigrams is new.
        assert_eq!(baseline.novelty(0, 2, &[1, 2, 2]).0, 0.5);
        assert_eq!(baseline.stide(&spec, &[1, 2, 3, 1, 2, 3]), 0.0);
        assert_eq!(baseline.stide(&spec, &[9, 9, 9, 9, 9, 9]), 1.0);
    }

    #[test]
    fn rows_have_one_value_per_named_column() {
        let spec = FeatureSpec::service();
        let training = [WindowObs {
            calls: vec![1, 2, 1, 2, 1, 2],
            execs: vec!["/bin/app".into()],
            peers: vec!["10.0.0.1:443".into()],
            ..WindowObs::default()
        }];
        let baseline = Baseline::learn(&spec, &training);
        let featurizer = Featurizer::new(spec);
        let names = featurizer.names();
        let odd = WindowObs {
            calls: vec![1, 7, 1, 2],
            execs: vec!["/bin/app".into(), "/tmp/x".into()],
            peers: vec!["10.0.0.9:4444".into()],
            sensitive_opens: 1,
            failed: 2,
        };
        let row = featurizer.row(&baseline, &odd);
        assert_eq!(row.len(), names.len());
        assert_eq!(row.len(), featurizer.width());
        let value = |name: &str| row[names.iter().position(|n| n == name).expect(name)];
        assert_eq!(value("seq.new_syscall_share"), 0.25);
        assert_eq!(value("args.new_exec_share"), 0.5);
        assert_eq!(value("args.new_peer_share"), 1.0);
        assert_eq!(value("args.failed_share"), 0.5);
        // Window 1,7,1,2 against 1,2,1,2,1,2: shares differ by 0, .25, .25.
        assert_eq!(value("mix.distance"), 0.25);
        assert_eq!(value("seq.k2.unseen_share"), 2.0 / 3.0);
    }

    #[test]
    fn mix_distance_is_zero_for_the_same_mix_and_one_for_a_disjoint_one() {
        let spec = FeatureSpec::service();
        let baseline = Baseline::learn(&spec, &[window(&[1, 2, 1, 2])]);
        assert_eq!(baseline.mix_distance(&[2, 1, 2, 1, 1, 2]), 0.0);
        assert_eq!(baseline.mix_distance(&[3, 4]), 1.0);
        assert_eq!(baseline.mix_distance(&[1, 1, 1, 1]), 0.5);
        assert_eq!(baseline.mix_distance(&[]), 0.0);
        assert_eq!(Baseline::default().mix_distance(&[1]), 1.0);
    }
}
