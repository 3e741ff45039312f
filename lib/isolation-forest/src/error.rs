//! Errors: [`ParamsError`] for a bad hyper-parameter (always names it),
//! [`IsolationForestError`] for everything fitting and scoring can refuse.

/// A hyper-parameter outside its valid range.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParamsError {
    #[error("n_estimators must be at least 1, got {0}")]
    NEstimators(usize),
    #[error("max_samples must be at least 1, got {0}")]
    MaxSamplesAbsolute(usize),
    #[error("max_samples as a fraction of the rows must be in (0, 1], got {0}")]
    MaxSamplesRatio(f64),
    #[error("max_features must be at least 1, got {0}")]
    MaxFeaturesAbsolute(usize),
    #[error("max_features as a fraction of the features must be in (0, 1], got {0}")]
    MaxFeaturesRatio(f64),
    #[error("contamination must be in (0, 0.5], got {0}")]
    Contamination(f64),
}

impl ParamsError {
    /// The name of the offending parameter, as in scikit-learn.
    pub fn parameter(&self) -> &'static str {
        match self {
            Self::NEstimators(_) => "n_estimators",
            Self::MaxSamplesAbsolute(_) | Self::MaxSamplesRatio(_) => "max_samples",
            Self::MaxFeaturesAbsolute(_) | Self::MaxFeaturesRatio(_) => "max_features",
            Self::Contamination(_) => "contamination",
        }
    }
}

/// Why a forest could not be fitted, loaded or asked for scores.
#[derive(Debug, thiserror::Error)]
pub enum IsolationForestError {
    #[error("invalid hyper-parameter: {0}")]
    Params(#[from] ParamsError),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
    #[error(
        "cannot fit on {rows} rows of {columns} features: at least one row and one feature are needed"
    )]
    EmptyDataset { rows: usize, columns: usize },
    #[error("max_samples {ratio} of {rows} rows selects no row")]
    NoSamplesSelected { ratio: f64, rows: usize },
    #[error("max_features {requested} is more than the {columns} features of the data")]
    TooManyFeatures { requested: usize, columns: usize },
    #[error("{what} = {value} is more than an isolation tree can index (u32)")]
    TooLarge { what: &'static str, value: usize },
    #[error("row {row}, feature {column} is not finite ({value})")]
    NonFinite {
        row: usize,
        column: usize,
        value: f64,
    },
    #[error("the model was fitted on {expected} features, the records have {got}")]
    FeatureCount { expected: usize, got: usize },
    #[error("invalid model: {0}")]
    InvalidModel(String),
}
