//! Cgroup id → cgroup path, cached.
//!
//! The kernel gives the cgroup v2 id (the inode of the cgroup's directory);
//! finding its path walks the unified hierarchy, so answers are cached in a
//! bounded map. A miss is cached briefly only: the cgroup may be created
//! after the walk (a container starting) and must then be found.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use vigil_cgroup::Hierarchies;

/// Default number of cgroups remembered.
pub const DEFAULT_CAPACITY: usize = 4096;
/// How long "no such cgroup" is believed.
const MISS_TTL: Duration = Duration::from_secs(1);

/// A bounded cache, evicting the oldest entry first.
#[derive(Debug)]
pub struct CgroupPaths {
    hierarchies: Hierarchies,
    capacity: usize,
    entries: HashMap<u64, Entry>,
    order: VecDeque<u64>,
}

#[derive(Debug)]
struct Entry {
    path: Option<String>,
    looked_up: Instant,
}

impl CgroupPaths {
    pub fn new(hierarchies: Hierarchies, capacity: usize) -> Self {
        Self {
            hierarchies,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The path of cgroup `id`, relative to the hierarchy root (`""` for the
    /// root itself); `None` when no such cgroup exists (any more).
    pub fn path_of(&mut self, id: u64) -> Option<String> {
        if let Some(entry) = self.entries.get(&id)
            && (entry.path.is_some() || entry.looked_up.elapsed() < MISS_TTL)
        {
            return entry.path.clone();
        }
        let path = self.hierarchies.unified_path_of_id(id);
        self.insert(id, path.clone());
        path
    }

    fn insert(&mut self, id: u64, path: Option<String>) {
        let entry = Entry {
            path,
            looked_up: Instant::now(),
        };
        if self.entries.insert(id, entry).is_some() {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn tree() -> (tempfile::TempDir, Hierarchies) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("kubepods/pod1/c1")).unwrap();
        std::fs::create_dir_all(root.path().join("system.slice")).unwrap();
        let hierarchies = Hierarchies {
            unified: Some(root.path().to_owned()),
            freezer_v1: None,
        };
        (root, hierarchies)
    }

    fn inode(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn paths_are_found_by_inode_and_cached() {
        let (root, hierarchies) = tree();
        let mut cache = CgroupPaths::new(hierarchies, 8);
        let id = inode(&root.path().join("kubepods/pod1/c1"));
        assert_eq!(cache.path_of(id).as_deref(), Some("kubepods/pod1/c1"));
        // Cached: still answered after the directory is gone.
        std::fs::remove_dir(root.path().join("kubepods/pod1/c1")).unwrap();
        assert_eq!(cache.path_of(id).as_deref(), Some("kubepods/pod1/c1"));
        assert_eq!(cache.path_of(inode(root.path())).as_deref(), Some(""));
    }

    #[test]
    fn the_cache_is_bounded_oldest_first() {
        let (root, hierarchies) = tree();
        let mut cache = CgroupPaths::new(hierarchies, 2);
        let ids = [
            inode(root.path()),
            inode(&root.path().join("system.slice")),
            inode(&root.path().join("kubepods")),
        ];
        for id in ids {
            assert!(cache.path_of(id).is_some());
        }
        assert_eq!(cache.len(), 2);
        assert!(!cache.entries.contains_key(&ids[0]));
    }

    #[test]
    fn misses_expire_so_new_cgroups_are_found() {
        let (root, hierarchies) = tree();
        let mut cache = CgroupPaths::new(hierarchies, 8);
        let dir = root.path().join("late");
        std::fs::create_dir(&dir).unwrap();
        let id = inode(&dir);
        // As if looked up just before the cgroup was created.
        cache.insert(id, None);
        assert_eq!(cache.path_of(id), None, "a fresh miss is believed");
        let entry = cache.entries.get_mut(&id).unwrap();
        entry.looked_up = entry.looked_up.checked_sub(MISS_TTL).unwrap();
        assert_eq!(cache.path_of(id).as_deref(), Some("late"));
    }
}
