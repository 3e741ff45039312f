//! An isolation forest (Liu, Ting & Zhou, ICDM 2008) on ndarray, shaped as a
//! linfa algorithm and defined exactly as scikit-learn's `IsolationForest`,
//! so that its scores can be checked against scikit-learn on the same data.
//!
//! ```
//! use linfa::prelude::*;
//! use ndarray::{Array2, array};
//! use vigil_isolation_forest::IsolationForest;
//!
//! // A dense square of normal behaviour, and one odd point.
//! let train = Array2::from_shape_fn((400, 2), |(i, j)| if j == 0 { (i % 20) as f64 } else { (i / 20) as f64 });
//! let model = IsolationForest::params().seed(7).fit(&DatasetBase::from(train))?;
//! let scores = model.score_samples(&array![[10.0, 10.0], [60.0, -40.0]])?;
//! assert!(scores[1] < scores[0]); // lower is more anomalous
//! let labels = model.predict(&array![[10.0, 10.0], [60.0, -40.0]]); // +1 inlier, -1 outlier
//! assert_eq!(labels, array![1, -1]);
//! # Ok::<(), vigil_isolation_forest::IsolationForestError>(())
//! ```
//!
//! # Definitions (scikit-learn 1.9)
//!
//! * Hyper-parameters: [`IsolationForestParams`], validated into
//!   [`IsolationForestValidParams`] through linfa's [`ParamGuard`]; the
//!   defaults are scikit-learn's (100 trees, `max_samples` = min(256, n),
//!   every feature, no bootstrap, contamination `auto`).
//! * Each tree is grown on `max_samples` rows drawn without replacement, to a
//!   depth limit of ceil(log2(max(max_samples, 2))). At each node the split
//!   feature is drawn uniformly among the features that are **not constant
//!   in that node** (max − min > 1e-7, as scikit-learn's splitter), the
//!   threshold uniformly in [min, max) of that feature in the node, and rows
//!   with `x <= threshold` go left. A node is a leaf at the depth limit, with
//!   fewer than 2 rows, or when every feature is constant in it.
//! * Path length of `x` in a tree: the depth (in edges) of the leaf it reaches
//!   plus [`average_path_length`]`(rows of the training sample in that leaf)`.
//! * [`IsolationForest::score_samples`] = −2^(−mean path length / c(max_samples)),
//!   in [−1, 0): higher is more normal (scikit-learn's sign).
//! * [`IsolationForest::decision_function`] = score_samples − offset, where
//!   the offset is −0.5 for contamination `auto` and otherwise the
//!   contamination percentile (linear interpolation, as `numpy.percentile`)
//!   of the training rows' scores; `predict` is −1 where the decision
//!   function is negative, +1 elsewhere.
//!
//! Fitting and scoring run on rayon's current pool (trees in parallel when
//! fitting, blocks of rows when scoring); results do not depend on the
//! number of threads, because every tree draws from its own generator seeded
//! from the master seed. A fitted model is plain data (serde), checked when
//! deserialised so that a corrupt model is an error, not a panic later.
//!
//! Records must be finite: fitting and the checked scoring methods reject
//! NaN and infinities with [`IsolationForestError::NonFinite`].

mod block;
mod error;
mod forest;
mod params;
mod tree;

pub use error::{IsolationForestError, ParamsError};
pub use forest::IsolationForest;
pub use params::{
    Contamination, IsolationForestParams, IsolationForestValidParams, MaxFeatures, MaxSamples,
};
pub use tree::average_path_length;

pub use linfa::ParamGuard;
