//! One isolation tree: grown on a sample of rows, stored as a flat node array.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Euler–Mascheroni constant, as `numpy.euler_gamma`.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// A feature whose range in a node is at most this is constant there
/// (scikit-learn's `FEATURE_THRESHOLD`, a float32 1e-7).
const FEATURE_THRESHOLD: f64 = 1e-7_f32 as f64;

/// c(n): the average path length of an unsuccessful search in a binary
/// search tree of `n` keys, the expected depth left to isolate a row in a
/// leaf that still holds `n` training rows. scikit-learn's
/// `_average_path_length`: 0 for n ≤ 1, 1 for n = 2, otherwise
/// 2·(ln(n−1) + γ) − 2·(n−1)/n.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Depth limit for trees grown on `max_samples` rows: ceil(log2(max(max_samples, 2))).
pub(crate) fn depth_limit(max_samples: usize) -> u32 {
    let m = max_samples.max(2);
    usize::BITS - (m - 1).leading_zeros()
}

/// A node. Children are adjacent: `left` and `left + 1`. The root is node 0
/// and never a child, so `left == 0` marks a leaf, whose `value` is its
/// path length (depth + c(rows in it)); at an inner node `value` is the
/// threshold (`x[feature] <= value` goes left).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Node {
    pub value: f64,
    pub feature: u32,
    pub left: u32,
}

impl Node {
    fn leaf(path_length: f64) -> Self {
        Self {
            value: path_length,
            feature: 0,
            left: 0,
        }
    }

    pub fn is_leaf(&self) -> bool {
        self.left == 0
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
}

/// A node still to be grown: the rows `order[start..end]` reached it;
/// `candidates` are the features (record columns) not yet known to be
/// constant in it.
struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: u32,
    candidates: Vec<u32>,
}

impl Tree {
    /// Grows a tree on the rows `order` (indices, repeats allowed) of the
    /// column-major records `columns` (`columns[f * n + i]` is feature `f`
    /// of row `i`), splitting on `features` only. The sample is read in
    /// place rather than copied: a tree looks at a few of its features.
    pub fn grow(
        columns: &[f64],
        n: usize,
        mut order: Vec<u32>,
        features: &[u32],
        max_depth: u32,
        rng: &mut impl Rng,
    ) -> Self {
        let mut nodes = vec![Node::leaf(0.0)];
        let mut stack = vec![Pending {
            node: 0,
            start: 0,
            end: order.len(),
            depth: 0,
            candidates: features.to_vec(),
        }];
        while let Some(Pending {
            node,
            start,
            end,
            depth,
            mut candidates,
        }) = stack.pop()
        {
            let reached = &mut order[start..end];
            let leaf = Node::leaf(f64::from(depth) + average_path_length(reached.len()));
            if depth >= max_depth || reached.len() < 2 {
                nodes[node] = leaf;
                continue;
            }
            // Draw among the candidates without replacement until one is not
            // constant here; the constant ones go to the tail and are dropped,
            // as they stay constant in every descendant.
            let mut remaining = candidates.len();
            let mut split = None;
            while remaining > 0 {
                let pick = rng.random_range(0..remaining);
                let column = &columns[candidates[pick] as usize * n..][..n];
                let (low, high) = min_max(column, reached);
                if high <= low + FEATURE_THRESHOLD {
                    candidates.swap(pick, remaining - 1);
                    remaining -= 1;
                    continue;
                }
                split = Some((candidates[pick], low, high));
                break;
            }
            let Some((feature, low, high)) = split else {
                nodes[node] = leaf;
                continue;
            };
            candidates.truncate(remaining);
            let mut threshold = low + (high - low) * rng.random::<f64>();
            if threshold >= high {
                threshold = low;
            }
            let column = &columns[feature as usize * n..][..n];
            let mid = start + partition(reached, |i| column[i as usize] <= threshold);
            let left = nodes.len();
            nodes.push(Node::leaf(0.0));
            nodes.push(Node::leaf(0.0));
            nodes[node] = Node {
                value: threshold,
                feature,
                left: left as u32,
            };
            stack.push(Pending {
                node: left + 1,
                start: mid,
                end,
                depth: depth + 1,
                candidates: candidates.clone(),
            });
            stack.push(Pending {
                node: left,
                start,
                end: mid,
                depth: depth + 1,
                candidates,
            });
        }
        Self { nodes }
    }

    /// Path length of a row (depth of its leaf + c(rows in the leaf)).
    #[inline]
    pub fn path_length(&self, row: &[f64]) -> f64 {
        let mut at = 0;
        loop {
            let node = &self.nodes[at];
            if node.is_leaf() {
                return node.value;
            }
            at = node.left as usize + usize::from(row[node.feature as usize] > node.value);
        }
    }

    /// Depth (in edges) of the deepest leaf; children come after parents.
    pub fn depth(&self) -> u32 {
        let mut depth = vec![0u32; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_leaf() {
                depth[node.left as usize] = depth[i] + 1;
                depth[node.left as usize + 1] = depth[i] + 1;
            }
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// Checks what scoring relies on: children exist and come after their
    /// parent (so a walk ends), features are in range, values are finite.
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a tree has no node".into());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.value.is_finite() {
                return Err(format!("node {i} has a non-finite value"));
            }
            if node.is_leaf() {
                continue;
            }
            let left = node.left as usize;
            if left <= i || left + 1 >= self.nodes.len() {
                return Err(format!(
                    "node {i} has children {left} and {} out of order or range",
                    left + 1
                ));
            }
            if node.feature as usize >= n_features {
                return Err(format!(
                    "node {i} splits on feature {} of {n_features}",
                    node.feature
                ));
            }
        }
        Ok(())
    }
}

fn min_max(column: &[f64], rows: &[u32]) -> (f64, f64) {
    rows.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), &i| {
            let v = column[i as usize];
            (low.min(v), high.max(v))
        })
}

/// Moves the rows satisfying `goes_left` to the front; returns how many.
fn partition(rows: &mut [u32], goes_left: impl Fn(u32) -> bool) -> usize {
    let mut mid = 0;
    for i in 0..rows.len() {
        if goes_left(rows[i]) {
            rows.swap(mid, i);
            mid += 1;
        }
    }
    mid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_path_length_matches_scikit_learn() {
        // scikit-learn 1.9.1 `_average_path_length`, printed with repr().
        let expected = [
            (0, 0.0),
            (1, 0.0),
            (2, 1.0),
            (3, 1.207392357589623),
            (4, 1.8516559071392855),
            (5, 2.327020052042847),
            (10, 3.748880484475505),
            (100, 8.364671030072245),
            (256, 10.244770920119917),
            (1000, 12.969940887100174),
        ];
        for (n, c) in expected {
            let got = average_path_length(n);
            assert!((got - c).abs() <= 1e-12, "c({n}) = {got}, scikit-learn {c}");
        }
    }

    #[test]
    fn depth_limit_is_ceil_log2() {
        for (m, d) in [
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (255, 8),
            (256, 8),
            (257, 9),
            (833, 10),
        ] {
            assert_eq!(depth_limit(m), d, "max_samples {m}");
        }
    }

    #[test]
    fn corrupt_trees_are_refused() {
        let cycle = Tree {
            nodes: vec![
                Node {
                    value: 0.5,
                    feature: 0,
                    left: 0,
                },
                Node {
                    value: 0.5,
                    feature: 0,
                    left: 1,
                },
                Node::leaf(1.0),
            ],
        };
        assert!(cycle.validate(1).is_err());
        let out_of_range = Tree {
            nodes: vec![
                Node {
                    value: 0.5,
                    feature: 0,
                    left: 1,
                },
                Node::leaf(1.0),
            ],
        };
        assert!(out_of_range.validate(1).is_err());
        let bad_feature = Tree {
            nodes: vec![
                Node {
                    value: 0.5,
                    feature: 3,
                    left: 1,
                },
                Node::leaf(1.0),
                Node::leaf(1.0),
            ],
        };
        assert!(bad_feature.validate(3).is_err());
        assert!(bad_feature.validate(4).is_ok());
        let nan = Tree {
            nodes: vec![Node::leaf(f64::NAN)],
        };
        assert!(nan.validate(1).is_err());
    }
}
