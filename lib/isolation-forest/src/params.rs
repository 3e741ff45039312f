//! Hyper-parameters, unchecked ([`IsolationForestParams`], a builder) and
//! checked ([`IsolationForestValidParams`], what `Fit` is implemented on).

use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use crate::ParamsError;

/// Rows drawn for each tree (scikit-learn's `max_samples`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum MaxSamples {
    /// min(256, rows).
    #[default]
    Auto,
    /// This many rows, or all rows when there are fewer.
    Absolute(usize),
    /// floor(fraction × rows); the fraction is in (0, 1].
    Ratio(f64),
}

/// Features each tree may split on (scikit-learn's `max_features`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    /// This many features, drawn without replacement per tree.
    Absolute(usize),
    /// max(1, floor(fraction × features)); the fraction is in (0, 1].
    Ratio(f64),
}

impl Default for MaxFeatures {
    fn default() -> Self {
        Self::Ratio(1.0)
    }
}

/// Expected share of outliers, which places the decision threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Contamination {
    /// Offset −0.5: the threshold of the original paper.
    #[default]
    Auto,
    /// The offset is this percentile of the training rows' scores; in (0, 0.5].
    Ratio(f64),
}

/// Checked hyper-parameters; build them through [`IsolationForestParams`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForestValidParams {
    pub(crate) n_estimators: usize,
    pub(crate) max_samples: MaxSamples,
    pub(crate) max_features: MaxFeatures,
    pub(crate) contamination: Contamination,
    pub(crate) bootstrap: bool,
    pub(crate) seed: u64,
}

impl IsolationForestValidParams {
    pub fn n_estimators(&self) -> usize {
        self.n_estimators
    }

    pub fn max_samples(&self) -> MaxSamples {
        self.max_samples
    }

    pub fn max_features(&self) -> MaxFeatures {
        self.max_features
    }

    pub fn contamination(&self) -> Contamination {
        self.contamination
    }

    pub fn bootstrap(&self) -> bool {
        self.bootstrap
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// Hyper-parameters with scikit-learn's defaults; `seed` defaults to 0 so
/// that an unconfigured forest is still reproducible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForestParams(IsolationForestValidParams);

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self(IsolationForestValidParams {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            max_features: MaxFeatures::default(),
            contamination: Contamination::Auto,
            bootstrap: false,
            seed: 0,
        })
    }
}

impl IsolationForestParams {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of trees (≥ 1).
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.0.n_estimators = n;
        self
    }

    pub fn max_samples(mut self, max_samples: MaxSamples) -> Self {
        self.0.max_samples = max_samples;
        self
    }

    pub fn max_features(mut self, max_features: MaxFeatures) -> Self {
        self.0.max_features = max_features;
        self
    }

    pub fn contamination(mut self, contamination: Contamination) -> Self {
        self.0.contamination = contamination;
        self
    }

    /// Draw each tree's rows with replacement.
    pub fn bootstrap(mut self, bootstrap: bool) -> Self {
        self.0.bootstrap = bootstrap;
        self
    }

    /// Master seed; every tree gets its own generator derived from it.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
}

impl ParamGuard for IsolationForestParams {
    type Checked = IsolationForestValidParams;
    type Error = ParamsError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.n_estimators == 0 {
            return Err(ParamsError::NEstimators(p.n_estimators));
        }
        match p.max_samples {
            MaxSamples::Auto => {}
            MaxSamples::Absolute(0) => return Err(ParamsError::MaxSamplesAbsolute(0)),
            MaxSamples::Absolute(_) => {}
            MaxSamples::Ratio(r) if !(r > 0.0 && r <= 1.0) => {
                return Err(ParamsError::MaxSamplesRatio(r));
            }
            MaxSamples::Ratio(_) => {}
        }
        match p.max_features {
            MaxFeatures::Absolute(0) => return Err(ParamsError::MaxFeaturesAbsolute(0)),
            MaxFeatures::Absolute(_) => {}
            MaxFeatures::Ratio(r) if !(r > 0.0 && r <= 1.0) => {
                return Err(ParamsError::MaxFeaturesRatio(r));
            }
            MaxFeatures::Ratio(_) => {}
        }
        match p.contamination {
            Contamination::Auto => {}
            Contamination::Ratio(c) if !(c > 0.0 && c <= 0.5) => {
                return Err(ParamsError::Contamination(c));
            }
            Contamination::Ratio(_) => {}
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
