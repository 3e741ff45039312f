//! `vigil-scorer-cli evaluate` and the library behind it, on small
//! generated trace sets in ADFA-LD's layout, and on bad ones.

use std::path::Path;
use std::process::Command;

use vigil_anomaly_scorer::evaluate::{
    ATTACK, EvaluateError, TRAINING, TraceSet, VALIDATION, evaluate,
};
use vigil_anomaly_scorer::scorer::DEFAULT_MIN_SCORE;

/// A server loop: a few request shapes picked pseudo-randomly.
fn normal_trace(seed: u64) -> Vec<u32> {
    let shapes: [&[u32]; 4] = [
        &[3, 4, 5, 6],
        &[3, 4, 102, 5, 6],
        &[3, 45, 4, 6],
        &[3, 4, 4, 5],
    ];
    let mut state = (seed + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut calls = vec![11, 45, 33];
    while calls.len() < 120 {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let pick = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % 10;
        let shape = match pick {
            0..6 => 0,
            6..8 => 1,
            8 => 2,
            _ => 3,
        };
        calls.extend_from_slice(shapes[shape]);
    }
    calls
}

/// Normal behaviour with a foreign sequence spliced in.
fn attack_trace(seed: u64, payload: &[u32]) -> Vec<u32> {
    let mut calls = normal_trace(seed);
    let at = calls.len() / 2;
    calls.splice(at..at, payload.repeat(4));
    calls
}

fn write_trace(dir: &Path, name: &str, calls: &[u32]) {
    std::fs::create_dir_all(dir).expect("create folder");
    let text: Vec<String> = calls.iter().map(u32::to_string).collect();
    std::fs::write(dir.join(name), text.join(" ") + " \n").expect("write trace");
}

/// 40 training, 60 validation, two families of 10 attacks each (the
/// second in two numbered folders).
fn generated_set() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path();
    for i in 0..40 {
        write_trace(
            &dir.join(TRAINING),
            &format!("t{i:03}.txt"),
            &normal_trace(i),
        );
    }
    for i in 0..60 {
        write_trace(
            &dir.join(VALIDATION),
            &format!("v{i:03}.txt"),
            &normal_trace(1000 + i),
        );
    }
    for i in 0..10 {
        let shell = attack_trace(2000 + i, &[11, 63, 63, 11, 102]);
        write_trace(
            &dir.join(ATTACK).join("Shell_1"),
            &format!("a{i}.txt"),
            &shell,
        );
        let scan = attack_trace(3000 + i, &[102, 42, 42, 6, 102, 6]);
        let folder = if i < 5 { "Scan_1" } else { "Scan_2" };
        write_trace(&dir.join(ATTACK).join(folder), &format!("a{i}.txt"), &scan);
    }
    // Not a trace: ignored.
    std::fs::write(dir.join(TRAINING).join("README"), "notes").expect("write");
    root
}

#[test]
fn a_generated_set_separates_attacks_beside_stide_per_family() {
    let root = generated_set();
    let set = TraceSet::load(root.path()).expect("load");
    assert_eq!(
        (set.training.len(), set.validation.len(), set.attack.len()),
        (40, 60, 20)
    );
    let families: Vec<(String, usize)> = set.families().into_iter().collect();
    assert_eq!(
        families,
        vec![("Scan".to_owned(), 10), ("Shell".to_owned(), 10)]
    );

    let evaluation = evaluate(&set, &[0, 1], DEFAULT_MIN_SCORE).expect("evaluate");
    assert_eq!(evaluation.runs.len(), 2);
    for run in &evaluation.runs {
        // The attacks hold 6-grams no normal trace has.
        assert!(run.detection.auc > 0.95, "{run:?}");
        assert!(run.detection.dr[2] > 0.9, "{run:?}");
        assert_eq!(run.detection.family.len(), 2);
        assert!(run.operating_dr > 0.9, "{run:?}");
        assert!(run.score_threshold >= DEFAULT_MIN_SCORE);
    }
    assert!(evaluation.stide.auc > 0.95, "{:?}", evaluation.stide);
    assert!(evaluation.stide.family.contains_key("Shell"));

    let report = evaluation.render(&set);
    for expected in [
        "40 training, 60 validation, 20 attack in 2 families",
        "ROC AUC",
        "DR@1%FPR",
        "STIDE (unseen 6-grams)",
        "Scan (scorer)",
        "Shell (STIDE)",
        "finding_min_score 0.60",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing in\n{report}"
        );
    }
}

#[test]
fn the_cli_prints_the_evaluation_and_names_a_bad_file_and_line() {
    let cli = env!("CARGO_BIN_EXE_vigil-scorer-cli");
    let root = generated_set();
    let out = Command::new(cli)
        .args(["evaluate", "--seeds", "1"])
        .arg(root.path())
        .output()
        .expect("run the CLI");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("scorer (mean of 1 seeds)"), "{stdout}");
    assert!(stdout.contains("Shell (scorer)"), "{stdout}");

    let bad = root.path().join(VALIDATION).join("v007.txt");
    std::fs::write(&bad, "3 4 5\n6 open 5\n").expect("write");
    let out = Command::new(cli)
        .arg("evaluate")
        .arg(root.path())
        .output()
        .expect("run the CLI");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "{}:2: \"open\" is not a syscall number",
            bad.display()
        )),
        "{stderr}"
    );
}

#[test]
fn bad_sets_are_errors_that_name_the_path() {
    let root = generated_set();
    let dir = root.path();

    let trace = dir.join(ATTACK).join("Shell_1").join("a3.txt");
    std::fs::write(&trace, "11 63\n\n63 -1 102\n").expect("write");
    match TraceSet::load(dir) {
        Err(EvaluateError::NotASyscall { path, line, token }) => {
            assert_eq!((path, line, token.as_str()), (trace.clone(), 3, "-1"));
        }
        other => panic!("expected NotASyscall, got {other:?}"),
    }
    std::fs::write(&trace, " \n").expect("write");
    assert!(matches!(TraceSet::load(dir), Err(EvaluateError::EmptyTrace(p)) if p == trace));
    std::fs::remove_file(&trace).expect("remove");

    std::fs::remove_dir_all(dir.join(VALIDATION)).expect("remove");
    let error = TraceSet::load(dir).expect_err("no validation folder");
    assert!(matches!(&error, EvaluateError::MissingFolder(p) if *p == dir.join(VALIDATION)));
    assert!(
        error
            .to_string()
            .contains("Validation_Data_Master: missing folder")
    );

    std::fs::create_dir(dir.join(VALIDATION)).expect("create");
    assert!(
        matches!(TraceSet::load(dir), Err(EvaluateError::NoTraces(p)) if p == dir.join(VALIDATION))
    );

    let few = tempfile::tempdir().expect("temp dir");
    for i in 0..3 {
        write_trace(
            &few.path().join(TRAINING),
            &format!("t{i}.txt"),
            &normal_trace(i),
        );
    }
    assert!(matches!(
        TraceSet::load(few.path()),
        Err(EvaluateError::TooFewTraining { found: 3, .. })
    ));
    assert!(matches!(
        TraceSet::load(&few.path().join("nowhere")),
        Err(EvaluateError::MissingFolder(_))
    ));
}
