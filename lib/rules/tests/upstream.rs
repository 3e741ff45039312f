//! Compatibility figure: Falco's upstream rules files (test data in
//! /work/shared/falco-upstream, see its README) load and compile with our
//! engine. Missing data is a failure, not a skip.

#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::path::PathBuf;

use vigil_rules::{RuleSet, Syscalls};

/// Overridable for other checkouts; the default is where the fixtures live.
fn upstream_dir() -> PathBuf {
    std::env::var_os("VIGIL_FALCO_UPSTREAM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/falco-upstream"))
}

fn file(name: &str) -> PathBuf {
    let path = upstream_dir().join(name);
    assert!(
        path.is_file(),
        "missing test data {} (set VIGIL_FALCO_UPSTREAM)",
        path.display()
    );
    path
}

/// (file, rules, macros, lists, disabled rules) from the fixtures' README,
/// except the sandbox macro count: the README counts lines starting with
/// `- macro:` (182), and one more item there is written with `condition`
/// first (`recon_binaries_procs`); then the rules skipped because they need
/// a field in `vigil_rules::fields::UNSUPPORTED` (each named in a warning).
const FILES: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("falco_rules.yaml", 25, 87, 49, 0, SKIPPED[0]),
    ("falco-incubating_rules.yaml", 31, 82, 54, 0, SKIPPED[1]),
    ("falco-sandbox_rules.yaml", 37, 183, 60, 12, SKIPPED[2]),
];

const SKIPPED: [usize; 3] = [5, 8, 3];

#[test]
fn every_upstream_rule_compiles() {
    let mut total = 0;
    for (name, rules, macros, lists, disabled, skipped) in FILES {
        let set = RuleSet::load_files(&[file(name)]).unwrap_or_else(|e| panic!("{e}"));
        let s = &set.summary;
        println!(
            "{name}: {rules} rules compile ({} enabled, {} disabled, {} skipped for unsupported fields), {} macros, {} lists",
            s.rules_enabled, s.rules_disabled, s.rules_skipped, s.macros, s.lists
        );
        for warning in set.warnings.iter().filter(|w| w.contains("is skipped")) {
            println!("  {warning}");
        }
        assert_eq!(s.rules_defined, *rules, "{name}");
        assert_eq!(
            s.rules_enabled + s.rules_disabled + s.rules_skipped,
            *rules,
            "{name}"
        );
        assert_eq!(s.rules_disabled, *disabled, "{name}");
        assert_eq!(s.rules_skipped, *skipped, "{name}");
        assert_eq!(s.macros, *macros, "{name}");
        assert_eq!(s.lists, *lists, "{name}");
        assert_eq!(s.rules_other_source, 0, "{name}");
        total += rules;
    }
    assert_eq!(total, 93);
}

#[test]
fn upstream_files_load_together_later_definitions_win() {
    let paths: Vec<_> = FILES.iter().map(|(n, ..)| file(n)).collect();
    let set = RuleSet::load_files(&paths).unwrap_or_else(|e| panic!("{e}"));
    // Rule names are unique across the three files.
    assert_eq!(set.summary.rules_defined, 93);
    assert_eq!(
        set.rules().len(),
        93 - 12 - SKIPPED.iter().sum::<usize>(),
        "{:?}",
        set.warnings
    );
    let Syscalls::Only(syscalls) = set.syscalls() else {
        panic!("an upstream rule runs on every event: {:?}", set.warnings)
    };
    for needed in ["execve", "openat", "connect"] {
        assert!(
            syscalls.contains(needed),
            "{needed} missing from {syscalls:?}"
        );
    }
    println!(
        "upstream rules need {} syscalls: {syscalls:?}",
        syscalls.len()
    );
}
