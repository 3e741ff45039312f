//! The fitted forest: `Fit` on checked parameters, scikit-learn's scores.

use linfa::prelude::*;
use linfa::{DatasetBase, Float};
use ndarray::{Array1, ArrayBase, ArrayView2, Data, Ix1, Ix2, s};
use rand::seq::index;
use rand::{Rng, RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::IsolationForestError;
use crate::block::BlockForest;
use crate::params::{
    Contamination, IsolationForestParams, IsolationForestValidParams, MaxFeatures, MaxSamples,
};
use crate::tree::{Tree, average_path_length, depth_limit};

/// A fitted isolation forest. Fit one with
/// `IsolationForest::params().fit(&dataset)` (linfa's [`Fit`]); predict
/// labels with linfa's [`Predict`] or [`IsolationForest::try_predict`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ForestData")]
pub struct IsolationForest {
    params: IsolationForestValidParams,
    n_features: usize,
    /// Rows each tree was grown on (scikit-learn's `max_samples_`).
    max_samples: usize,
    offset: f64,
    trees: Vec<Tree>,
    /// The trees laid out for batch scoring (derived, not serialised).
    #[serde(skip)]
    block: BlockForest,
}

/// The serialised form, checked before it becomes a model.
#[derive(Deserialize)]
struct ForestData {
    params: IsolationForestValidParams,
    n_features: usize,
    max_samples: usize,
    offset: f64,
    trees: Vec<Tree>,
}

impl TryFrom<ForestData> for IsolationForest {
    type Error = IsolationForestError;

    fn try_from(data: ForestData) -> Result<Self, Self::Error> {
        let invalid = |why: String| IsolationForestError::InvalidModel(why);
        if data.trees.is_empty() {
            return Err(invalid("no trees".into()));
        }
        if data.n_features == 0 || data.max_samples == 0 {
            return Err(invalid(format!(
                "{} features, max_samples {}",
                data.n_features, data.max_samples
            )));
        }
        if !data.offset.is_finite() {
            return Err(invalid(format!("offset {}", data.offset)));
        }
        for (i, tree) in data.trees.iter().enumerate() {
            tree.validate(data.n_features)
                .map_err(|why| invalid(format!("tree {i}: {why}")))?;
        }
        let ForestData {
            params,
            n_features,
            max_samples,
            offset,
            trees,
        } = data;
        Ok(Self::new(params, n_features, max_samples, offset, trees))
    }
}

impl IsolationForest {
    fn new(
        params: IsolationForestValidParams,
        n_features: usize,
        max_samples: usize,
        offset: f64,
        trees: Vec<Tree>,
    ) -> Self {
        let block = BlockForest::new(&trees, n_features);
        Self {
            params,
            n_features,
            max_samples,
            offset,
            trees,
            block,
        }
    }

    /// Hyper-parameters with scikit-learn's defaults.
    pub fn params() -> IsolationForestParams {
        IsolationForestParams::default()
    }

    /// The checked parameters the model was fitted with.
    pub fn fitted_params(&self) -> &IsolationForestValidParams {
        &self.params
    }

    pub fn n_estimators(&self) -> usize {
        self.trees.len()
    }

    /// Number of features of the records it was fitted on (and scores).
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Rows each tree was grown on (scikit-learn's `max_samples_`).
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// `score_samples − decision_function` (scikit-learn's `offset_`).
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// Mean path length of each row over the trees, E[h(x)].
    pub fn mean_path_lengths<F: Float, D: Data<Elem = F>>(
        &self,
        x: &ArrayBase<D, Ix2>,
    ) -> Result<Array1<f64>, IsolationForestError> {
        if x.ncols() != self.n_features {
            return Err(IsolationForestError::FeatureCount {
                expected: self.n_features,
                got: x.ncols(),
            });
        }
        let x = x.view();
        check_finite(&x)?;
        let stride = self.block.stride();
        let mut lengths = vec![0.0; x.nrows()];
        if x.nrows() <= stride {
            self.block_path_lengths(&x, 0, &mut lengths, &mut Scratch::default());
        } else {
            lengths.par_chunks_mut(stride).enumerate().for_each_init(
                Scratch::default,
                |scratch, (b, out)| {
                    self.block_path_lengths(&x, b * stride, out, scratch);
                },
            );
        }
        Ok(Array1::from(lengths))
    }

    /// scikit-learn's `score_samples`: −2^(−E[h(x)] / c(max_samples)), in
    /// [−1, 0); the lower, the more anomalous.
    pub fn score_samples<F: Float, D: Data<Elem = F>>(
        &self,
        x: &ArrayBase<D, Ix2>,
    ) -> Result<Array1<f64>, IsolationForestError> {
        let normaliser = average_path_length(self.max_samples);
        Ok(self.mean_path_lengths(x)?.mapv(|h| score(h, normaliser)))
    }

    /// `score_samples` of one row, without going through rayon: the
    /// streaming path.
    pub fn score_sample<F: Float, D: Data<Elem = F>>(
        &self,
        row: &ArrayBase<D, Ix1>,
    ) -> Result<f64, IsolationForestError> {
        if row.len() != self.n_features {
            return Err(IsolationForestError::FeatureCount {
                expected: self.n_features,
                got: row.len(),
            });
        }
        let mut values = Vec::with_capacity(row.len());
        for (column, &v) in row.iter().enumerate() {
            values.push(finite(v, 0, column)?);
        }
        let total: f64 = self
            .trees
            .iter()
            .map(|tree| tree.path_length(&values))
            .sum();
        Ok(score(
            total / self.trees.len() as f64,
            average_path_length(self.max_samples),
        ))
    }

    /// scikit-learn's `decision_function`: `score_samples − offset`;
    /// negative means outlier.
    pub fn decision_function<F: Float, D: Data<Elem = F>>(
        &self,
        x: &ArrayBase<D, Ix2>,
    ) -> Result<Array1<f64>, IsolationForestError> {
        Ok(self.score_samples(x)? - self.offset)
    }

    /// +1 for inliers, −1 for outliers (decision function below 0).
    pub fn try_predict<F: Float, D: Data<Elem = F>>(
        &self,
        x: &ArrayBase<D, Ix2>,
    ) -> Result<Array1<i8>, IsolationForestError> {
        Ok(self
            .decision_function(x)?
            .mapv(|d| if d < 0.0 { -1 } else { 1 }))
    }

    /// Mean path lengths of the rows from `start` on, one per entry of
    /// `out` (at most a block's stride), into `out`.
    fn block_path_lengths<F: Float>(
        &self,
        x: &ArrayView2<F>,
        start: usize,
        out: &mut [f64],
        scratch: &mut Scratch,
    ) {
        let stride = self.block.stride();
        let columns = self.block.columns();
        scratch.block.resize(self.block.block_len(), 0.0);
        let rows = x.slice(s![start..start + out.len(), ..]);
        for (r, row) in rows.rows().into_iter().enumerate() {
            match row.as_slice() {
                Some(row) => fill_row(&mut scratch.block, stride, r, columns, |f| row[f]),
                None => fill_row(&mut scratch.block, stride, r, columns, |f| row[f]),
            }
        }
        out.fill(0.0);
        self.block.add_path_lengths(&scratch.block, out);
        let n = self.trees.len() as f64;
        for total in out {
            *total /= n;
        }
    }
}

/// Per-thread buffers for scoring blocks of rows.
#[derive(Default)]
struct Scratch {
    /// The block, feature-major.
    block: Vec<f64>,
}

/// Writes row `r` of a block from the record's values (`value(f)` is
/// feature `f`), already checked finite.
fn fill_row<F: Float>(
    block: &mut [f64],
    stride: usize,
    r: usize,
    columns: &[u32],
    value: impl Fn(usize) -> F,
) {
    for (k, &f) in columns.iter().enumerate() {
        block[k * stride + r] = value(f as usize).to_f64().unwrap_or(f64::NAN);
    }
}

/// The first non-finite value, row by row, as an error. The common case,
/// all finite, is checked over whole chunks so that it vectorises.
fn check_finite<F: Float>(x: &ArrayView2<F>) -> Result<(), IsolationForestError> {
    let all_finite = match x.as_slice() {
        Some(values) => values
            .chunks(256)
            .all(|chunk| chunk.iter().fold(true, |ok, v| ok & v.is_finite())),
        None => x.iter().all(|v| v.is_finite()),
    };
    if all_finite {
        return Ok(());
    }
    for ((row, column), &v) in x.indexed_iter() {
        finite(v, row, column)?;
    }
    Ok(())
}

fn score(mean_path_length: f64, normaliser: f64) -> f64 {
    // With one training row c(1) = 0; scikit-learn then uses a ratio of 1.
    let ratio = if normaliser > 0.0 {
        mean_path_length / normaliser
    } else {
        1.0
    };
    -(-ratio).exp2()
}

fn finite<F: Float>(v: F, row: usize, column: usize) -> Result<f64, IsolationForestError> {
    let value = v.to_f64().unwrap_or(f64::NAN);
    if value.is_finite() {
        Ok(value)
    } else {
        Err(IsolationForestError::NonFinite { row, column, value })
    }
}

/// `numpy.percentile(values, q)` with its default linear interpolation.
fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let position = q / 100.0 * (values.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(values.len() - 1);
    let (a, b, t) = (values[below], values[above], position - below as f64);
    // numpy's _lerp, which interpolates from the nearer end.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

impl<F: Float, D: Data<Elem = F>, T> Fit<ArrayBase<D, Ix2>, T, IsolationForestError>
    for IsolationForestValidParams
{
    type Object = IsolationForest;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<IsolationForest, IsolationForestError> {
        let x = dataset.records().view();
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(IsolationForestError::EmptyDataset {
                rows: n,
                columns: d,
            });
        }
        if u32::try_from(d).is_err() {
            return Err(IsolationForestError::TooLarge {
                what: "features",
                value: d,
            });
        }
        check_finite(&x)?;
        let max_samples = match self.max_samples {
            MaxSamples::Auto => n.min(256),
            MaxSamples::Absolute(m) => m.min(n),
            MaxSamples::Ratio(ratio) => match (ratio * n as f64) as usize {
                0 => return Err(IsolationForestError::NoSamplesSelected { ratio, rows: n }),
                m => m,
            },
        };
        if u32::try_from(max_samples).is_err() {
            return Err(IsolationForestError::TooLarge {
                what: "max_samples",
                value: max_samples,
            });
        }
        let tree_features = match self.max_features {
            MaxFeatures::Absolute(k) if k > d => {
                return Err(IsolationForestError::TooManyFeatures {
                    requested: k,
                    columns: d,
                });
            }
            MaxFeatures::Absolute(k) => k,
            MaxFeatures::Ratio(ratio) => ((ratio * d as f64) as usize).max(1),
        };
        let max_depth = depth_limit(max_samples);

        let mut master = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let seeds: Vec<u64> = (0..self.n_estimators).map(|_| master.next_u64()).collect();
        // Each tree's generator draws its rows and features first, then
        // grows the tree: the draws are taken out so that only the rows some
        // tree sampled are converted, once, for all trees.
        let draws: Vec<Draw> = seeds
            .into_par_iter()
            .map(|seed| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                let rows: Vec<usize> = if self.bootstrap {
                    (0..max_samples).map(|_| rng.random_range(0..n)).collect()
                } else {
                    index::sample(&mut rng, n, max_samples).into_vec()
                };
                let features: Vec<u32> = if tree_features == d {
                    (0..d as u32).collect()
                } else {
                    let mut drawn: Vec<u32> = index::sample(&mut rng, d, tree_features)
                        .into_iter()
                        .map(|f| f as u32)
                        .collect();
                    drawn.sort_unstable();
                    drawn
                };
                Draw {
                    rng,
                    rows,
                    features,
                }
            })
            .collect();
        let sampled = SampledRows::of(&x, &draws)?;
        let trees: Vec<Tree> = draws
            .into_par_iter()
            .map(|mut draw| {
                let order = draw.rows.iter().map(|&r| sampled.slot[r]).collect();
                Tree::grow(
                    &sampled.columns,
                    sampled.rows,
                    order,
                    &draw.features,
                    max_depth,
                    &mut draw.rng,
                )
            })
            .collect();

        let mut model = IsolationForest::new(self.clone(), d, max_samples, -0.5, trees);
        if let Contamination::Ratio(contamination) = self.contamination {
            let scores = model.score_samples(&x)?;
            model.offset = percentile(scores.to_vec(), 100.0 * contamination);
        }
        Ok(model)
    }
}

/// What a tree drew before growing: its generator continues into the growth.
struct Draw {
    rng: Xoshiro256PlusPlus,
    rows: Vec<usize>,
    features: Vec<u32>,
}

/// The training rows some tree sampled, as f64, column-major.
struct SampledRows {
    /// `columns[f * rows + slot[r]]` is feature `f` of record row `r`.
    columns: Vec<f64>,
    rows: usize,
    /// Position of each record row in `columns` (unsampled rows: unused).
    slot: Vec<u32>,
}

impl SampledRows {
    fn of<F: Float>(x: &ArrayView2<F>, draws: &[Draw]) -> Result<Self, IsolationForestError> {
        let (n, d) = x.dim();
        let mut sampled = vec![false; n];
        for &r in draws.iter().flat_map(|draw| &draw.rows) {
            sampled[r] = true;
        }
        let kept: Vec<usize> = (0..n).filter(|&r| sampled[r]).collect();
        let rows = kept.len();
        if u32::try_from(rows).is_err() {
            return Err(IsolationForestError::TooLarge {
                what: "sampled rows",
                value: rows,
            });
        }
        let mut slot = vec![0; n];
        let mut columns = vec![0.0; rows * d];
        for (i, &r) in kept.iter().enumerate() {
            slot[r] = i as u32;
            for (f, &v) in x.row(r).iter().enumerate() {
                columns[f * rows + i] = v.to_f64().unwrap_or(f64::NAN);
            }
        }
        Ok(Self {
            columns,
            rows,
            slot,
        })
    }
}

/// linfa's prediction: +1 inlier, −1 outlier.
///
/// # Panics
///
/// On records with the wrong number of features or a non-finite value, as
/// linfa's models do on shape errors; [`IsolationForest::try_predict`]
/// returns these as errors instead.
impl<F: Float, D: Data<Elem = F>> PredictInplace<ArrayBase<D, Ix2>, Array1<i8>>
    for IsolationForest
{
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<i8>) {
        assert_eq!(
            x.nrows(),
            y.len(),
            "the number of records and of targets differ"
        );
        match self.try_predict(x) {
            Ok(labels) => y.assign(&labels),
            Err(error) => panic!("isolation forest cannot predict: {error}"),
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<i8> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use approx_eq::close;
    use ndarray::{Array2, ShapeBuilder, array};

    use super::*;
    use crate::{ParamGuard, ParamsError};

    mod approx_eq {
        pub fn close(a: f64, b: f64) -> bool {
            (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
        }
    }

    /// A bell-shaped blob of `n` rows around the origin (each value the sum
    /// of three uniforms on [-1, 1]), reproducible.
    fn blob(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| {
            (0..3).map(|_| rng.random_range(-1.0..1.0)).sum::<f64>()
        })
    }

    fn fit(params: IsolationForestParams, x: &Array2<f64>) -> IsolationForest {
        params.fit(&DatasetBase::from(x.clone())).expect("fit")
    }

    #[test]
    fn same_seed_same_model_and_scores() {
        let x = blob(500, 4, 1);
        let a = fit(IsolationForest::params().seed(3), &x);
        let b = fit(IsolationForest::params().seed(3), &x);
        assert_eq!(a, b);
        assert_eq!(
            a.score_samples(&x).expect("score"),
            b.score_samples(&x).expect("score")
        );
        let c = fit(IsolationForest::params().seed(4), &x);
        assert_ne!(a, c);
    }

    #[test]
    fn thread_count_does_not_change_the_model() {
        let x = blob(700, 3, 2);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let a = one.install(|| fit(IsolationForest::params().seed(9), &x));
        let b = three.install(|| fit(IsolationForest::params().seed(9), &x));
        assert_eq!(a, b);
        let sa = one.install(|| a.score_samples(&x).expect("score"));
        let sb = three.install(|| b.score_samples(&x).expect("score"));
        assert_eq!(sa, sb);
    }

    #[test]
    fn obvious_outliers_score_lower_than_inliers() {
        let mut x = blob(300, 2, 5);
        let outliers = array![[8.0, 8.0], [-9.0, 7.5], [10.0, -10.0]];
        assert!(x.iter().all(|v| v.abs() <= 3.0));
        let model = fit(IsolationForest::params().seed(1), &x);
        let inlier_scores = model.score_samples(&x).expect("score");
        let outlier_scores = model.score_samples(&outliers).expect("score");
        let mut sorted = inlier_scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        for s in &outlier_scores {
            assert!(
                *s < sorted[0],
                "outlier {s} not below every inlier (lowest {})",
                sorted[0]
            );
            assert!(*s < -0.5);
        }
        assert_eq!(model.predict(&outliers), array![-1, -1, -1]);
        // The paper's threshold flags the blob's fringe: scikit-learn 1.9.1
        // flags 51–84 of 300 such rows (10 draws, seeds 0–9).
        let flagged = model.predict(&x).iter().filter(|&&l| l == -1).count();
        assert!(
            (30..=110).contains(&flagged),
            "{flagged} of 300 inliers flagged"
        );
        // The outliers also stand out when they are part of the training data.
        x.append(ndarray::Axis(0), outliers.view()).expect("append");
        let model = fit(IsolationForest::params().seed(1), &x);
        let scores = model.score_samples(&x).expect("score");
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let mut lowest = order[..3].to_vec();
        lowest.sort_unstable();
        assert_eq!(lowest, vec![300, 301, 302]);
    }

    #[test]
    fn path_lengths_follow_the_definition() {
        // Rows 0, 0, 0, 10 on feature 0; feature 1 is constant and must never
        // be split on. Every tree splits the root on feature 0 (the only
        // non-constant one) at a threshold in [0, 10): {0,0,0} is a leaf of 3
        // duplicates at depth 1, {10} a leaf of one at depth 1.
        let x = array![[0.0, 7.0], [0.0, 7.0], [0.0, 7.0], [10.0, 7.0]];
        let model = fit(IsolationForest::params().seed(11).n_estimators(50), &x);
        assert_eq!(model.max_samples(), 4);
        let h = model
            .mean_path_lengths(&array![[0.0, 7.0], [10.0, 7.0], [-3.0, 0.0], [25.0, 100.0]])
            .expect("h");
        let inner = 1.0 + average_path_length(3);
        for (got, want) in h.iter().zip([inner, 1.0, inner, 1.0]) {
            assert!(close(*got, want), "{got} vs {want}");
        }
        let scores = model
            .score_samples(&array![[0.0, 7.0], [10.0, 7.0]])
            .expect("score");
        let c4 = average_path_length(4);
        assert!(close(scores[0], -(2f64).powf(-inner / c4)));
        assert!(close(scores[1], -(2f64).powf(-1.0 / c4)));
        for tree in &model.trees {
            assert_eq!(tree.nodes.len(), 3);
            assert_eq!(tree.nodes[0].feature, 0);
        }
    }

    #[test]
    fn degenerate_training_sets() {
        // One row: c(1) = 0 and scikit-learn scores everything −0.5.
        let model = fit(IsolationForest::params(), &array![[1.0, 2.0]]);
        assert_eq!(
            model
                .score_samples(&array![[1.0, 2.0], [5.0, 5.0]])
                .expect("score"),
            array![-0.5, -0.5]
        );
        // Two rows: one split at depth 1, c(2) = 1, so every score is −2^−1.
        let model = fit(IsolationForest::params(), &array![[0.0], [1.0]]);
        assert_eq!(
            model
                .score_samples(&array![[0.5], [-4.0], [4.0]])
                .expect("score"),
            array![-0.5, -0.5, -0.5]
        );
        // All rows equal: the root is a leaf of n rows, h = c(n) = c(max_samples).
        let model = fit(IsolationForest::params(), &Array2::from_elem((10, 3), 1.5));
        assert!(close(
            model
                .score_samples(&array![[9.0, 9.0, 9.0]])
                .expect("score")[0],
            -0.5
        ));
    }

    #[test]
    fn max_samples_and_depth() {
        let x = blob(1000, 2, 3);
        assert_eq!(fit(IsolationForest::params(), &x).max_samples(), 256);
        assert_eq!(
            fit(
                IsolationForest::params().max_samples(MaxSamples::Absolute(5000)),
                &x
            )
            .max_samples(),
            1000
        );
        assert_eq!(
            fit(
                IsolationForest::params().max_samples(MaxSamples::Ratio(0.1)),
                &x
            )
            .max_samples(),
            100
        );
        let small = blob(100, 2, 3);
        let model = fit(IsolationForest::params(), &small);
        assert_eq!(model.max_samples(), 100);
        // Depth limit ceil(log2(100)) = 7: no leaf deeper than 7.
        for tree in &model.trees {
            let mut depth = vec![0u32; tree.nodes.len()];
            for (i, node) in tree.nodes.iter().enumerate() {
                if !node.is_leaf() {
                    depth[node.left as usize] = depth[i] + 1;
                    depth[node.left as usize + 1] = depth[i] + 1;
                }
            }
            assert!(depth.iter().all(|&d| d <= 7));
        }
        let err = IsolationForest::params()
            .max_samples(MaxSamples::Ratio(0.001))
            .fit(&DatasetBase::from(small.clone()));
        assert!(matches!(
            err,
            Err(IsolationForestError::NoSamplesSelected { .. })
        ));
    }

    #[test]
    fn bootstrap_draws_rows_with_replacement() {
        let x = blob(300, 2, 9);
        let with = fit(IsolationForest::params().bootstrap(true), &x);
        assert!(with == fit(IsolationForest::params().bootstrap(true), &x));
        assert!(with != fit(IsolationForest::params(), &x));
        assert_eq!(with.max_samples(), 256);
        assert!(with.score_samples(&x).is_ok());
    }

    #[test]
    fn contamination_sets_the_offset_to_a_percentile() {
        let x = blob(400, 3, 8);
        let model = fit(
            IsolationForest::params().contamination(Contamination::Ratio(0.1)),
            &x,
        );
        let scores = model.score_samples(&x).expect("score");
        assert!(close(model.offset(), percentile(scores.to_vec(), 10.0)));
        let flagged = model
            .try_predict(&x)
            .expect("predict")
            .iter()
            .filter(|&&l| l == -1)
            .count();
        assert_eq!(flagged, 40);
        let decision = model.decision_function(&x).expect("decision");
        assert!(close(decision[0], scores[0] - model.offset()));
        assert_eq!(fit(IsolationForest::params(), &x).offset(), -0.5);
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], q) for q = 0, 10, 50, 90, 100.
        let v = vec![10.0, 2.0, 4.0, 1.0, 3.0];
        for (q, want) in [
            (0.0, 1.0),
            (10.0, 1.4),
            (50.0, 3.0),
            (90.0, 7.6),
            (100.0, 10.0),
        ] {
            assert!(
                close(percentile(v.clone(), q), want),
                "q {q}: {}",
                percentile(v.clone(), q)
            );
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases: Vec<(IsolationForestParams, &str)> = vec![
            (IsolationForest::params().n_estimators(0), "n_estimators"),
            (
                IsolationForest::params().max_samples(MaxSamples::Absolute(0)),
                "max_samples",
            ),
            (
                IsolationForest::params().max_samples(MaxSamples::Ratio(0.0)),
                "max_samples",
            ),
            (
                IsolationForest::params().max_samples(MaxSamples::Ratio(1.5)),
                "max_samples",
            ),
            (
                IsolationForest::params().max_samples(MaxSamples::Ratio(f64::NAN)),
                "max_samples",
            ),
            (
                IsolationForest::params().max_features(MaxFeatures::Absolute(0)),
                "max_features",
            ),
            (
                IsolationForest::params().max_features(MaxFeatures::Ratio(-0.1)),
                "max_features",
            ),
            (
                IsolationForest::params().contamination(Contamination::Ratio(0.0)),
                "contamination",
            ),
            (
                IsolationForest::params().contamination(Contamination::Ratio(0.6)),
                "contamination",
            ),
        ];
        for (params, name) in cases {
            let error = params.clone().check().expect_err("invalid");
            assert_eq!(error.parameter(), name);
            assert!(error.to_string().starts_with(name), "{error}");
            // Fit on unchecked parameters checks them first (linfa's blanket impl).
            let fitted = params.fit(&DatasetBase::from(array![[1.0], [2.0]]));
            match fitted {
                Err(IsolationForestError::Params(e)) => assert_eq!(e.parameter(), name),
                other => panic!("expected a parameter error, got {other:?}"),
            }
        }
        assert!(
            IsolationForest::params()
                .contamination(Contamination::Ratio(0.5))
                .check()
                .is_ok()
        );
        assert_eq!(
            IsolationForest::params().n_estimators(0).check(),
            Err(ParamsError::NEstimators(0))
        );
    }

    #[test]
    fn bad_records_are_errors() {
        let empty = Array2::<f64>::zeros((0, 3));
        assert!(matches!(
            IsolationForest::params().fit(&DatasetBase::from(empty)),
            Err(IsolationForestError::EmptyDataset {
                rows: 0,
                columns: 3
            })
        ));
        let nan = array![[1.0, 2.0], [f64::NAN, 1.0]];
        assert!(matches!(
            IsolationForest::params().fit(&DatasetBase::from(nan)),
            Err(IsolationForestError::NonFinite {
                row: 1,
                column: 0,
                ..
            })
        ));
        let too_many = IsolationForest::params()
            .max_features(MaxFeatures::Absolute(3))
            .fit(&DatasetBase::from(array![[1.0, 2.0]]));
        assert!(matches!(
            too_many,
            Err(IsolationForestError::TooManyFeatures {
                requested: 3,
                columns: 2
            })
        ));
        let model = fit(IsolationForest::params(), &blob(50, 2, 1));
        assert!(matches!(
            model.score_samples(&array![[1.0, 2.0, 3.0]]),
            Err(IsolationForestError::FeatureCount {
                expected: 2,
                got: 3
            })
        ));
        assert!(matches!(
            model.score_sample(&array![1.0]),
            Err(IsolationForestError::FeatureCount {
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            model.score_samples(&array![[0.0, 0.0], [0.0, f64::INFINITY]]),
            Err(IsolationForestError::NonFinite {
                row: 1,
                column: 1,
                ..
            })
        ));
    }

    #[test]
    fn single_row_and_f32_records_score_like_the_batch() {
        let x = blob(2000, 5, 4);
        let model = fit(IsolationForest::params().seed(2), &x);
        let batch = model.score_samples(&x).expect("score");
        for (i, row) in x.rows().into_iter().enumerate().step_by(97) {
            assert_eq!(model.score_sample(&row).expect("score"), batch[i]);
        }
        // f32 records fit and score through the same code.
        let x32 = x.mapv(|v| v as f32);
        let m32 = IsolationForest::params()
            .seed(2)
            .fit(&DatasetBase::from(x32.view()))
            .expect("fit");
        assert_eq!(m32.score_samples(&x32).expect("score").len(), 2000);
    }

    #[test]
    fn complete_layout_scores_like_the_walk() {
        let x = blob(3001, 3, 12);
        for max_samples in [
            MaxSamples::Absolute(5),
            MaxSamples::Auto,
            MaxSamples::Absolute(3000),
        ] {
            let model = fit(
                IsolationForest::params()
                    .n_estimators(20)
                    .max_samples(max_samples),
                &x,
            );
            let deep = model.block.walked_trees();
            match max_samples {
                MaxSamples::Absolute(3000) => assert!(deep > 0, "trees of depth 12 are walked"),
                _ => assert_eq!(deep, 0),
            }
            let batch = model.mean_path_lengths(&x).expect("batch");
            for (i, row) in x.rows().into_iter().enumerate() {
                let values = row.to_vec();
                let walked: f64 = model
                    .trees
                    .iter()
                    .map(|t| t.path_length(&values))
                    .sum::<f64>()
                    / 20.0;
                assert_eq!(batch[i], walked, "row {i}, {max_samples:?}");
            }
        }
    }

    /// Mean path length of one row by walking each tree's own nodes.
    fn walked_mean(model: &IsolationForest, row: &[f64]) -> f64 {
        model.trees.iter().map(|t| t.path_length(row)).sum::<f64>() / model.trees.len() as f64
    }

    #[test]
    fn block_layout_scores_like_the_walk_on_wide_records() {
        // 40 columns, every other one constant (never split on, so left out
        // of the blocks), a few features per tree, a row count that is no
        // multiple of the block, and records in column-major memory (rows
        // not contiguous) as well as f32.
        let mut x = blob(1037, 40, 21);
        for mut column in x.columns_mut().into_iter().step_by(2) {
            column.fill(3.0);
        }
        let model = fit(
            IsolationForest::params()
                .seed(8)
                .n_estimators(30)
                .max_features(MaxFeatures::Absolute(5)),
            &x,
        );
        assert!(model.block.columns().len() <= 20);
        assert!(!x.nrows().is_multiple_of(model.block.stride()));
        let fortran = {
            let mut f = Array2::zeros(x.dim().f());
            f.assign(&x);
            f
        };
        let batch = model.mean_path_lengths(&x).expect("batch");
        assert_eq!(model.mean_path_lengths(&fortran).expect("fortran"), batch);
        let x32 = x.mapv(|v| v as f32);
        let batch32 = model.mean_path_lengths(&x32).expect("f32");
        for (i, row) in x.rows().into_iter().enumerate() {
            assert_eq!(batch[i], walked_mean(&model, &row.to_vec()), "row {i}");
            let row32: Vec<f64> = x32.row(i).iter().map(|&v| f64::from(v)).collect();
            assert_eq!(batch32[i], walked_mean(&model, &row32), "f32 row {i}");
        }
        // A non-finite value in a column no tree uses is still refused.
        let mut bad = fortran.clone();
        bad[[700, 0]] = f64::NAN;
        assert!(matches!(
            model.score_samples(&bad),
            Err(IsolationForestError::NonFinite {
                row: 700,
                column: 0,
                ..
            })
        ));
    }

    #[test]
    fn scores_are_pinned_across_versions() {
        // Bit patterns of scores from the version before the sampled rows
        // were read in place: the random draws and the trees they grow must
        // not change, with every feature or a subset, with and without
        // bootstrap.
        let x = blob(400, 6, 30);
        let probe = x.slice(s![..3, ..]);
        let cases = [
            (
                IsolationForest::params().seed(9),
                [
                    13825030698500252288,
                    13824953820789172226,
                    13825785582576933698,
                ],
            ),
            (
                IsolationForest::params()
                    .seed(9)
                    .max_features(MaxFeatures::Absolute(2)),
                [
                    13825175410118177749,
                    13825228465692697195,
                    13825739479361735974,
                ],
            ),
            (
                IsolationForest::params().seed(9).bootstrap(true),
                [
                    13825318788077184728,
                    13825260996411163523,
                    13826082859866697186,
                ],
            ),
        ];
        for (params, bits) in cases {
            let model = fit(params, &x);
            let got: Vec<u64> = model
                .score_samples(&probe)
                .expect("score")
                .iter()
                .map(|s| s.to_bits())
                .collect();
            assert_eq!(got, bits);
        }
    }

    #[test]
    fn max_features_restricts_the_split_features() {
        let x = blob(300, 6, 6);
        let model = fit(
            IsolationForest::params().max_features(MaxFeatures::Absolute(2)),
            &x,
        );
        for tree in &model.trees {
            let mut used: Vec<u32> = tree
                .nodes
                .iter()
                .filter(|n| !n.is_leaf())
                .map(|n| n.feature)
                .collect();
            used.sort_unstable();
            used.dedup();
            assert!(used.len() <= 2, "{used:?}");
        }
        assert!(model.score_samples(&x).is_ok());
    }

    #[test]
    fn serde_round_trip_and_corrupt_models() {
        let x = blob(300, 3, 7);
        let model = fit(
            IsolationForest::params()
                .seed(5)
                .contamination(Contamination::Ratio(0.05)),
            &x,
        );
        let json = serde_json::to_string(&model).expect("serialise");
        let back: IsolationForest = serde_json::from_str(&json).expect("deserialise");
        assert!(back == model, "the model changed in a JSON round trip");
        assert_eq!(
            back.score_samples(&x).expect("score"),
            model.score_samples(&x).expect("score")
        );
        assert_eq!(back.offset(), model.offset());

        let mut value: serde_json::Value = serde_json::from_str(&json).expect("json");
        value["trees"][0][0]["feature"] = serde_json::json!(99);
        let error = serde_json::from_value::<IsolationForest>(value).expect_err("corrupt");
        assert!(
            error.to_string().contains("splits on feature 99"),
            "{error}"
        );
        let mut value: serde_json::Value = serde_json::from_str(&json).expect("json");
        value["trees"] = serde_json::json!([]);
        assert!(serde_json::from_value::<IsolationForest>(value).is_err());
    }
}
