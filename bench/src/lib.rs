//! The benchmark report: every benchmark prints `name: value unit` lines,
//! with the ratio to a baseline measured in the same run where it has one,
//! and merges its results into `target/bench/results.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One measured figure.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The same quantity for the baseline, measured in the same run.
    pub baseline: Option<f64>,
    /// value / baseline.
    pub ratio: Option<f64>,
}

/// Collects measurements and writes them out.
#[derive(Debug, Default)]
pub struct Report {
    measurements: Vec<Measurement>,
}

impl Report {
    /// Records and prints a figure without a baseline.
    pub fn add(&mut self, name: &str, value: f64, unit: &str) {
        self.push(Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline: None,
            ratio: None,
        });
    }

    /// Records and prints a figure with its same-run baseline.
    pub fn add_with_baseline(&mut self, name: &str, value: f64, unit: &str, baseline: f64) {
        let ratio = (baseline != 0.0).then(|| value / baseline);
        self.push(Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline: Some(baseline),
            ratio,
        });
    }

    fn push(&mut self, m: Measurement) {
        match (m.baseline, m.ratio) {
            (Some(b), Some(r)) => println!(
                "{}: {:.3} {} (baseline {:.3} {}, ratio {:.3})",
                m.name, m.value, m.unit, b, m.unit, r
            ),
            _ => println!("{}: {:.3} {}", m.name, m.value, m.unit),
        }
        self.measurements.push(m);
    }

    /// Merges into the results file: entries of the same name are replaced.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut all: Vec<Measurement> = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        all.retain(|old| !self.measurements.iter().any(|new| new.name == old.name));
        all.extend(self.measurements.iter().cloned());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?,
        )
    }
}

/// `target/bench/results.json` of this workspace.
pub fn results_path() -> PathBuf {
    std::env::var_os("VIGIL_BENCH_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench/results.json"))
}

/// The `q` quantile (0..=1) of unsorted samples, nearest rank.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut samples, 0.5), 50.0);
        assert_eq!(quantile(&mut samples, 0.99), 99.0);
        assert_eq!(quantile(&mut samples, 1.0), 100.0);
    }

    #[test]
    fn results_merge_by_name() {
        let dir = tempfile_dir();
        let path = dir.join("results.json");
        let mut first = Report::default();
        first.add("a", 1.0, "ms");
        first.add_with_baseline("b", 2.0, "ms", 4.0);
        first.write(&path).unwrap();
        let mut second = Report::default();
        second.add("a", 3.0, "ms");
        second.write(&path).unwrap();
        let all: Vec<Measurement> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.iter().find(|m| m.name == "a").unwrap().value, 3.0);
        assert_eq!(all.iter().find(|m| m.name == "b").unwrap().ratio, Some(0.5));
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
