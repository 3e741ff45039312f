//! Which event partitions a scorer instance owns, given the live members.
//!
//! Rendezvous (highest-random-weight) hashing: every member computes, for
//! each partition, a weight per member and the heaviest member owns it. All
//! members see the same set, so they agree without talking to each other;
//! when a member joins it takes only the partitions where it is now the
//! heaviest, and when one leaves only its partitions move. The weight is a
//! fixed hash (FNV-1a with a final mix), identical on every instance and
//! every build, unlike std's randomly seeded hasher.

use std::collections::BTreeSet;

use vigil_bus::subject::EVENT_PARTITIONS;

/// The partitions `me` owns among `members`, ascending. Empty when `me` is
/// not a member.
pub fn owned(members: &BTreeSet<String>, me: &str) -> Vec<u32> {
    if !members.contains(me) {
        return Vec::new();
    }
    (0..EVENT_PARTITIONS)
        .filter(|&partition| owner(members, partition) == Some(me))
        .collect()
}

/// The member owning `partition`: the highest weight, ties (practically
/// never) broken by the greater id so every member picks the same.
pub fn owner(members: &BTreeSet<String>, partition: u32) -> Option<&str> {
    members
        .iter()
        .max_by_key(|member| (weight(member, partition), member.as_str()))
        .map(String::as_str)
}

fn weight(member: &str, partition: u32) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in member.bytes().chain([0]).chain(partition.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    mix(hash)
}

/// MurmurHash3's 64-bit finaliser: FNV-1a alone leaves the high bits (which
/// decide the comparison) barely touched by the last bytes (the partition).
fn mix(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    /// Pod-like member ids, as `membership::member_id` makes them.
    fn ids(count: usize, salt: usize) -> BTreeSet<String> {
        (0..count)
            .map(|i| {
                format!(
                    "vigil-anomaly-scorer-5f7c9-{salt:04x}{i}.{:08x}",
                    i * 7919 + salt
                )
            })
            .collect()
    }

    fn owners(members: &BTreeSet<String>) -> Vec<String> {
        (0..EVENT_PARTITIONS)
            .map(|p| owner(members, p).expect("an owner").to_owned())
            .collect()
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        for count in 1..=20 {
            let members = ids(count, count);
            let mut seen = Vec::new();
            for member in &members {
                seen.extend(owned(&members, member));
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..EVENT_PARTITIONS).collect::<Vec<_>>(), "{count}");
        }
    }

    #[test]
    fn a_lone_member_owns_everything_and_a_stranger_nothing() {
        let members = set(&["a.1"]);
        assert_eq!(owned(&members, "a.1").len(), EVENT_PARTITIONS as usize);
        assert!(owned(&members, "b.2").is_empty());
        assert!(owned(&BTreeSet::new(), "a.1").is_empty());
    }

    #[test]
    fn the_same_members_give_the_same_answer_in_any_order() {
        let members = set(&["scorer-0.1f", "scorer-1.2e", "scorer-2.3d"]);
        let mut reversed = BTreeSet::new();
        for member in members.iter().rev() {
            reversed.insert(member.clone());
        }
        assert_eq!(owners(&members), owners(&reversed));
        // A fixed value (checked against an independent implementation):
        // the weight must not change between builds or hosts, or instances
        // of two versions would disagree during a rollout.
        assert_eq!(
            weight("a", 0),
            0xb7ec_f9f7_60c4_0cc1,
            "{:#x}",
            weight("a", 0)
        );
    }

    #[test]
    fn two_members_share_the_partitions_evenly_enough() {
        let mut shares = Vec::new();
        for salt in 0..500 {
            let members = ids(2, salt);
            let first = members.first().expect("two members");
            shares.push(owned(&members, first).len());
        }
        let within = shares.iter().filter(|&&n| (4..=12).contains(&n)).count();
        // Binomial(16, 1/2) lies in 4..=12 with probability 0.979.
        assert!(within >= 470, "{within} of 500 splits within 4..=12");
        let mean = shares.iter().sum::<usize>() as f64 / shares.len() as f64;
        assert!((7.5..=8.5).contains(&mean), "mean share {mean}");
        let typical = ids(2, 7);
        for member in &typical {
            let n = owned(&typical, member).len();
            assert!((4..=12).contains(&n), "{member}: {n}");
        }
    }

    #[test]
    fn a_joining_member_takes_partitions_only_from_others_to_itself() {
        for salt in 0..50 {
            let before = ids(3, salt);
            let mut after = before.clone();
            let newcomer = format!("newcomer-{salt}.abcdef01");
            after.insert(newcomer.clone());
            let (old, new) = (owners(&before), owners(&after));
            for p in 0..EVENT_PARTITIONS as usize {
                assert!(old[p] == new[p] || new[p] == newcomer, "partition {p}");
            }
        }
    }

    #[test]
    fn a_leaving_member_hands_over_only_its_own_partitions() {
        for salt in 0..50 {
            let before = ids(4, salt);
            let leaver = before.iter().nth(salt % 4).expect("member").clone();
            let mut after = before.clone();
            after.remove(&leaver);
            let (old, new) = (owners(&before), owners(&after));
            for p in 0..EVENT_PARTITIONS as usize {
                assert!(old[p] == new[p] || old[p] == leaver, "partition {p}");
                assert_ne!(new[p], leaver);
            }
        }
    }
}
