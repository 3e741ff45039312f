//! `vigil-detectors rules validate|list|fields`, run as the built binary
//! on real files.

use std::{path::Path, process::Command};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(vigil_testkit::binary("vigil-detectors"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run vigil-detectors");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().into_owned()
}

fn rule(name: &str, condition: &str, extra: &str) -> String {
    format!(
        "- rule: {name}\n  desc: d\n  condition: {condition}\n  output: o %proc.name\n  priority: WARNING\n  tags: [local]\n{extra}"
    )
}

#[test]
fn validate_reports_every_error_with_its_position_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unparsable = write(dir.path(), "broken.yaml", "- rule: x\n  desc: [a\n");
    let bad = write(
        dir.path(),
        "bad.yaml",
        &(rule("Typo", "evt.type = execve and proc.nmae = sh", "")
            + &rule("Syntax", "evt.type = execve and (", "")
            + &rule("Fine", "exec_ok and proc.name = nc", "")
            + &rule("Privileged", "exec_ok and container.privileged = true", "")),
    );
    let out = run(&["rules", "validate", &unparsable, &bad], &[]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let errors: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 3, "{}", out.stdout);
    assert!(
        errors[0].starts_with(&format!("error: {unparsable}:3:1: invalid YAML")),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!(
            "error: {bad}:3:36: rule \"Typo\": condition: unknown field `proc.nmae`"
        )),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with(&format!("error: {bad}:9:37: rule \"Syntax\"")),
        "{}",
        errors[2]
    );
    assert!(out.stdout.ends_with("failed: 3 errors\n"), "{}", out.stdout);
    // Warnings are shown beside the errors.
    assert!(
        out.stdout.contains(&format!(
            "warning: {bad}:21:14: rule \"Privileged\" is skipped"
        )),
        "{}",
        out.stdout
    );

    let missing = dir.path().join("missing.yaml");
    let out = run(&["rules", "validate", &missing.to_string_lossy()], &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stdout.contains("missing.yaml:0:0: cannot read"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_warns_by_name_for_unsupported_fields_and_honours_skip_if_unknown_filter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(
        dir.path(),
        "falco.yaml",
        &(rule(
            "Privileged",
            "evt.type = execve and not container.privileged = true",
            "",
        ) + &rule(
            "Newer Falco",
            "evt.type = execve and proc.future_field = x",
            "  skip-if-unknown-filter: true\n",
        ) + &rule("Runs", "exec_ok and proc.name = nc", "")),
    );
    let out = run(&["rules", "validate", &rules], &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "warning: {rules}:3:14: rule \"Privileged\" is skipped: it needs container.privileged (container spec is not carried)"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "warning: {rules}:9:14: rule \"Newer Falco\" is skipped"
        )) && out.stdout.contains("proc.future_field"),
        "{}",
        out.stdout
    );
    // The pack's rules plus the three, of which one runs.
    let summary = out.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("ok: ") && summary.contains(" 2 skipped"),
        "{summary}"
    );
}

#[test]
fn validate_takes_a_directory_of_yaml_files_in_name_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    // b appends to a's list: only the name order makes it load.
    write(dir.path(), "a.yaml", "- list: local_tools\n  items: [nc]\n");
    write(
        dir.path(),
        "b.yaml",
        &("- list: local_tools\n  items: [ncat]\n  append: true\n".to_owned()
            + &rule("Tools", "exec_ok and proc.name in (local_tools)", "")),
    );
    write(dir.path(), "README.md", "not rules");
    let path = dir.path().to_string_lossy().into_owned();
    let out = run(&["rules", "validate", "--no-default-pack", &path], &[]);
    assert_eq!(
        out.code,
        Some(1),
        "exec_ok comes from the pack: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("unknown macro `exec_ok`"),
        "{}",
        out.stdout
    );
    let out = run(&["rules", "validate", &path], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
}

#[test]
fn list_shows_every_rule_with_where_it_is_written_and_whether_it_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules_dir = dir.path().join("rules.d");
    std::fs::create_dir(&rules_dir).expect("mkdir");
    let local = write(
        &rules_dir,
        "local.yaml",
        &rule("Local nc", "exec_ok and proc.name = nc", ""),
    );
    let config = write(
        dir.path(),
        "detectors.toml",
        &format!(
            "[rules]\ndirectories = [{:?}]\ndisable_tags = [\"network\"]\nenable_rules = [\"Outbound SSH from container\"]\nmin_priority = \"notice\"\n",
            rules_dir.to_string_lossy()
        ),
    );
    let out = run(&["--config", &config, "rules", "list", "--json"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let entries: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    let mine = find("Local nc");
    assert_eq!(mine["file"], local.as_str());
    assert_eq!(mine["line"], 1);
    assert_eq!(mine["priority"], "warning");
    assert_eq!(mine["tags"], serde_json::json!(["local"]));
    assert_eq!(mine["enabled"], true);
    let network_rule = entries
        .iter()
        .find(|e| {
            e["name"] != "Outbound SSH from container"
                && e["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "network"))
        })
        .expect("a pack rule tagged network");
    assert_eq!(network_rule["enabled"], false);
    assert_eq!(
        network_rule["reason"],
        "disabled by tag \"network\" in the configuration"
    );
    assert_eq!(
        find("Outbound SSH from container")["enabled"],
        true,
        "names beat tags"
    );
    assert!(
        entries
            .iter()
            .filter(|e| e["priority"] == "informational" || e["priority"] == "debug")
            .all(|e| e["enabled"] == false && e["reason"] == "below the minimum priority"),
    );
    // The environment overrides the file, as for the service; the table
    // names the file and line.
    let out = run(
        &["--config", &config, "rules", "list"],
        &[("VIGIL_DETECTORS__RULES__DISABLE_TAGS", "[\"local\"]")],
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Local nc "))
        .expect("a row for the local rule");
    assert!(line.contains(&format!("{local}:1")), "{line}");
    assert!(
        line.ends_with("no (disabled by tag \"local\" in the configuration)"),
        "{line}"
    );
}

#[test]
fn list_reports_every_configuration_error_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        dir.path(),
        "detectors.toml",
        "[rules]\ndirectories = [\"/nonexistent/rules.d\"]\ndisable_rules = [\"No such rule\"]\nenable_tags = [\"no-such-tag\"]\nmin_priority = \"loud\"\n",
    );
    let out = run(&["--config", &config, "rules", "list"], &[]);
    assert_eq!(out.code, Some(78), "{}", out.stdout);
    for expected in [
        "rules.min_priority: \"loud\"",
        "rules: /nonexistent/rules.d:0:0: cannot list the rules directory",
        "rules.disable_rules: no rule is named \"No such rule\"",
        "rules.enable_tags: no rule has the tag \"no-such-tag\"",
    ] {
        assert!(
            out.stderr.contains(expected),
            "{expected} missing from {}",
            out.stderr
        );
    }
}

#[test]
fn fields_prints_the_table_and_the_checked_in_reference() {
    let out = run(&["rules", "fields"], &[]);
    assert_eq!(out.code, Some(0));
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("proc.aname, proc.aname[N] "))
        .expect("the ancestors row");
    assert!(row.contains(" list "), "{row}");
    let out = run(&["rules", "fields", "--markdown"], &[]);
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rules/fields.md");
    let checked_in = std::fs::read_to_string(&reference).expect("docs/rules/fields.md");
    assert!(
        out.stdout == checked_in,
        "docs/rules/fields.md is out of date"
    );
    assert!(checked_in.contains("| `container.privileged` | container spec is not carried |"));
}
