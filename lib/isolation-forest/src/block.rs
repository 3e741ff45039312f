//! The forest laid out for batch scoring: rows are scored a block at a time,
//! the block stored feature-major with only the features some tree splits
//! on, and every tree is walked for all rows of the block level by level.
//!
//! Why this shape: a row-major block of wide records does not fit in L1, and
//! walking one row at a time chains every load on the previous one. Here a
//! block of the used features fits in L1, a tree is walked for the whole
//! block while its nodes are in cache, and within a level the rows are
//! independent, so the processor overlaps their loads.

use crate::tree::Tree;

/// Values of one block that should fit in L1 (32 KiB of f64).
const BLOCK_VALUES: usize = 4096;

/// Bounds of the rows per block: enough rows to amortise walking a tree's
/// nodes, few enough for a block to be a unit of parallel work.
const MIN_BLOCK_ROWS: usize = 16;
const MAX_BLOCK_ROWS: usize = 256;

/// Rows walked down a tree in one unrolled group.
const LANES: usize = 4;

/// Deepest tree laid out complete (2^10 leaves, 20 KiB); deeper ones are walked.
const MAX_COMPLETE_DEPTH: u32 = 10;

/// The trees of a forest, with split features renumbered as offsets into a
/// feature-major block: compact column `k` of block row `r` is at
/// `block[k * stride + r]`, and a node stores `k * stride`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BlockForest {
    /// Rows per block, and the distance between two columns of a block.
    stride: usize,
    /// The record column of each compact column.
    columns: Vec<u32>,
    trees: Vec<BlockTree>,
}

#[derive(Clone, Debug, PartialEq)]
enum BlockTree {
    Complete(CompleteTree),
    /// A tree too deep to lay out complete, walked row by row.
    Walk(Vec<WalkNode>),
}

/// A tree node whose feature is a block offset (children at `left`, `left + 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct WalkNode {
    value: f64,
    column: usize,
    left: u32,
}

/// A tree re-laid out as the complete binary tree of its depth, so that
/// every row takes exactly `depth` steps: inner node `i` has children
/// `2i + 1` and `2i + 2`, and a leaf above the bottom level is pushed down
/// through pass-through nodes whose threshold is +∞ (every finite value
/// goes left).
#[derive(Clone, Debug, PartialEq)]
struct CompleteTree {
    depth: u32,
    /// Thresholds of the 2^depth − 1 inner nodes, and one unused entry so
    /// that the length is a power of two: an index masked with length − 1
    /// needs no bounds check.
    thresholds: Vec<f64>,
    /// Block offset of each inner node's feature (same length).
    columns: Vec<u32>,
    /// Path lengths of the 2^depth leaves.
    leaves: Vec<f64>,
}

impl BlockForest {
    pub fn new(trees: &[Tree], n_features: usize) -> Self {
        let mut used = vec![false; n_features];
        for node in trees.iter().flat_map(|t| &t.nodes) {
            if !node.is_leaf() {
                used[node.feature as usize] = true;
            }
        }
        let columns: Vec<u32> = (0..n_features as u32)
            .filter(|&f| used[f as usize])
            .collect();
        let stride = (BLOCK_VALUES / columns.len().max(1))
            .clamp(MIN_BLOCK_ROWS, MAX_BLOCK_ROWS)
            .next_multiple_of(LANES);
        // Block offset of each record column (unused columns never looked up).
        let mut offset = vec![0; n_features];
        for (k, &f) in columns.iter().enumerate() {
            offset[f as usize] = k * stride;
        }
        // The complete layout stores offsets as u32 (smaller nodes).
        let narrow = u32::try_from(columns.len() * stride).is_ok();
        let trees = trees
            .iter()
            .map(|tree| BlockTree::of(tree, &offset, narrow))
            .collect();
        Self {
            stride,
            columns,
            trees,
        }
    }

    /// Rows per block.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Values in a block: its columns, padded to a power of two so that a
    /// masked index needs no bounds check.
    pub fn block_len(&self) -> usize {
        (self.columns.len() * self.stride).next_power_of_two()
    }

    /// The record columns a block holds, in block order.
    pub fn columns(&self) -> &[u32] {
        &self.columns
    }

    /// Trees too deep for the complete layout.
    #[cfg(test)]
    pub fn walked_trees(&self) -> usize {
        self.trees
            .iter()
            .filter(|t| matches!(t, BlockTree::Walk(_)))
            .count()
    }

    /// Adds, for each of the first `totals.len()` rows of `block`, its path
    /// length in every tree, tree by tree (the order of the sum is the
    /// trees' order, as a walk of one row would add them).
    pub fn add_path_lengths(&self, block: &[f64], totals: &mut [f64]) {
        let mut at = [0; MAX_BLOCK_ROWS];
        let at = &mut at[..totals.len().next_multiple_of(LANES)];
        for tree in &self.trees {
            match tree {
                BlockTree::Complete(tree) => tree.add_path_lengths(block, totals, at),
                BlockTree::Walk(nodes) => walk(nodes, block, totals),
            }
        }
    }
}

impl BlockTree {
    /// `offset[f]` is the block offset of record column `f`; `narrow`: every
    /// offset fits in a u32.
    fn of(tree: &Tree, offset: &[usize], narrow: bool) -> Self {
        let depth = tree.depth();
        if depth > MAX_COMPLETE_DEPTH || !narrow {
            let nodes = tree
                .nodes
                .iter()
                .map(|n| WalkNode {
                    value: n.value,
                    column: if n.is_leaf() {
                        0
                    } else {
                        offset[n.feature as usize]
                    },
                    left: n.left,
                })
                .collect();
            return Self::Walk(nodes);
        }
        let mut complete = CompleteTree {
            depth,
            thresholds: vec![f64::INFINITY; 1 << depth],
            columns: vec![0; 1 << depth],
            leaves: vec![0.0; 1 << depth],
        };
        complete.place(tree, offset, 0, 0, 0);
        Self::Complete(complete)
    }
}

impl CompleteTree {
    fn place(&mut self, tree: &Tree, offset: &[usize], node: usize, at: usize, level: u32) {
        let n = tree.nodes[node];
        if level == self.depth {
            let first_leaf = self.leaves.len() - 1;
            self.leaves[at - first_leaf] = n.value;
        } else if n.is_leaf() {
            self.place(tree, offset, node, 2 * at + 1, level + 1);
            self.place(tree, offset, node, 2 * at + 2, level + 1);
        } else {
            self.thresholds[at] = n.value;
            self.columns[at] = offset[n.feature as usize] as u32;
            self.place(tree, offset, n.left as usize, 2 * at + 1, level + 1);
            self.place(tree, offset, n.left as usize + 1, 2 * at + 2, level + 1);
        }
    }

    /// Level by level over all rows of the block: the rows of a level are
    /// independent, so the processor overlaps their loads (written in
    /// groups of [`LANES`] so that the compiler unrolls it). `at` may be
    /// longer than `totals`, up to a multiple of [`LANES`] within the
    /// block's stride: those rows read padding and are dropped.
    fn add_path_lengths(&self, block: &[f64], totals: &mut [f64], at: &mut [usize]) {
        let mask = self.thresholds.len() - 1;
        let thresholds = &self.thresholds[..=mask];
        let columns = &self.columns[..=mask];
        // Masking changes no index: node indices stay below the mask, block
        // offsets below the block's length.
        let block_mask = block.len() - 1;
        let block = &block[..=block_mask];
        at.fill(0);
        for _ in 0..self.depth {
            for (group, at) in at.chunks_exact_mut(LANES).enumerate() {
                let base = group * LANES;
                for (lane, i) in at.iter_mut().enumerate() {
                    let node = *i & mask;
                    let value = block[(columns[node] as usize + base + lane) & block_mask];
                    *i = 2 * node + 1 + usize::from(value > thresholds[node]);
                }
            }
        }
        for (total, &i) in totals.iter_mut().zip(at.iter()) {
            *total += self.leaves[i - mask];
        }
    }
}

/// Walks each row down a tree whose features are block offsets.
fn walk(nodes: &[WalkNode], block: &[f64], totals: &mut [f64]) {
    for (row, total) in totals.iter_mut().enumerate() {
        let mut at = 0;
        loop {
            let node = &nodes[at];
            // The root is never a child: `left == 0` marks a leaf.
            if node.left == 0 {
                *total += node.value;
                break;
            }
            let value = block[node.column + row];
            at = node.left as usize + usize::from(value > node.value);
        }
    }
}
