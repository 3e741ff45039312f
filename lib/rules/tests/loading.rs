//! What loads and what runs: unsupported and unknown fields, Falco's
//! `skip-if-unknown-filter`, every error found in one pass, and the
//! configuration's selection of rules by name, tag and priority.

#![allow(clippy::unwrap_used, reason = "test assertions")]

use vigil_proto::v1::{Event, EventType, Priority};
use vigil_rules::{LoadErrors, Loader, Reason, RuleSet, Selection};

fn rule(name: &str, condition: &str, extra: &str) -> String {
    format!(
        "- rule: {name}\n  desc: d\n  condition: {condition}\n  output: o %proc.name\n  priority: WARNING\n{extra}"
    )
}

fn tagged(name: &str, priority: &str, tags: &str) -> String {
    format!(
        "- rule: {name}\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: {priority}\n  tags: [{tags}]\n"
    )
}

fn build(sources: &[(&str, &str)], selection: &Selection) -> Result<RuleSet, LoadErrors> {
    let mut loader = Loader::default();
    for (name, text) in sources {
        loader.source(name, text);
    }
    loader.build(selection)
}

fn load(sources: &[(&str, &str)]) -> RuleSet {
    build(sources, &Selection::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn state<'a>(set: &'a RuleSet, name: &str) -> &'a Result<(), Reason> {
    &set.entries()
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
        .state
}

fn exec(comm: &str) -> Event {
    Event {
        r#type: EventType::Exec as i32,
        syscall: "execve".into(),
        comm: comm.into(),
        kernel_time_ns: 5,
        ..Default::default()
    }
}

#[test]
fn a_rule_needing_an_unsupported_field_is_skipped_and_named_never_run() {
    // Negated, the absent field would make the rule fire on everything.
    let text = rule(
        "Privileged",
        "evt.type = execve and not container.privileged = true",
        "",
    ) + &rule(
        "Decoded",
        "evt.type = execve and b64(proc.cmdline) contains x",
        "",
    ) + &rule("Plain", "evt.type = execve", "");
    let set = load(&[("u.yaml", &text)]);
    let names: Vec<_> = set.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Plain"]);
    assert_eq!(
        state(&set, "Privileged"),
        &Err(Reason::Unsupported(vec!["container.privileged".into()]))
    );
    assert_eq!(
        state(&set, "Decoded"),
        &Err(Reason::Unsupported(vec!["b64()".into()]))
    );
    assert_eq!(set.summary.rules_skipped, 2);
    let warning = set
        .warnings
        .iter()
        .find(|w| w.contains("Privileged"))
        .unwrap();
    assert!(
        warning.starts_with("u.yaml:3:14: rule \"Privileged\" is skipped: it needs container.privileged (container spec is not carried)"),
        "{warning}"
    );
    // The same through a macro, and with Falco's opt-in.
    let text = "- macro: priv\n  condition: container.privileged = true\n".to_owned()
        + &rule(
            "Via macro",
            "evt.type = execve and priv",
            "  skip-if-unknown-filter: true\n",
        );
    let set = load(&[("m.yaml", &text)]);
    assert!(set.rules().is_empty());
    assert!(
        set.warnings
            .iter()
            .any(|w| w.contains("\"Via macro\" is skipped: it needs container.privileged")),
        "{:?}",
        set.warnings
    );
}

#[test]
fn an_unknown_field_is_refused_with_its_position_unless_the_rule_opts_into_skipping() {
    let refused = build(
        &[(
            "k.yaml",
            &rule("R", "evt.type = execve and proc.nmae = sh", ""),
        )],
        &Selection::default(),
    )
    .unwrap_err();
    assert_eq!(refused.files.len(), 1);
    let text = refused.to_string();
    assert!(
        text.starts_with("k.yaml:3:36: rule \"R\": condition: unknown field `proc.nmae`"),
        "{text}"
    );
    // A condition folded over lines: where its text starts, and the offset.
    let folded = "- rule: R\n  desc: d\n  condition: >\n    evt.type = execve\n    and proc.nmae = sh\n  output: o\n  priority: info\n";
    let text = build(&[("f.yaml", folded)], &Selection::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "f.yaml:4:5: rule \"R\": condition: unknown field `proc.nmae` (at offset 22)"
    );
    let opted = rule(
        "R",
        "evt.type = execve and proc.nmae = sh",
        "  skip-if-unknown-filter: true\n",
    ) + &rule("S", "evt.type = execve", "");
    let set = load(&[("k.yaml", &opted)]);
    assert_eq!(
        state(&set, "R"),
        &Err(Reason::UnknownField("proc.nmae".into()))
    );
    assert_eq!(set.rules().len(), 1);
    assert!(
        set.warnings
            .iter()
            .any(|w| w.starts_with("k.yaml:3:14: rule \"R\" is skipped")
                && w.contains("proc.nmae")),
        "{:?}",
        set.warnings
    );
    // Opting in does not excuse a syntax error.
    let syntax = rule("R", "proc.name = (", "  skip-if-unknown-filter: true\n");
    assert!(build(&[("s.yaml", &syntax)], &Selection::default()).is_err());
}

#[test]
fn unsupported_output_fields_print_na_with_a_warning_and_the_rule_runs() {
    let text = "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: p=%container.privileged\n  priority: info\n";
    let set = load(&[("o.yaml", text)]);
    assert_eq!(set.rules().len(), 1);
    assert!(
        set.warnings.iter().any(
            |w| w.starts_with("o.yaml:1:3:") && w.contains("%container.privileged prints <NA>")
        ),
        "{:?}",
        set.warnings
    );
    assert_eq!(set.rules()[0].output.render(&exec("sh")).text, "p=<NA>");
}

#[test]
fn falcos_never_true_and_always_true_idioms_hold() {
    let text = rule("Never", "evt.type = execve and evt.num = 0", "")
        + &rule("Always", "evt.type = execve and evt.num >= 0", "");
    let set = load(&[("n.yaml", &text)]);
    let fired: Vec<_> = set.matching(&exec("sh")).map(|r| r.name.clone()).collect();
    assert_eq!(fired, ["Always"]);
    let mut at_zero = exec("sh");
    at_zero.kernel_time_ns = 0;
    let fired: Vec<_> = set.matching(&at_zero).map(|r| r.name.clone()).collect();
    assert_eq!(fired, ["Always"]);
}

#[test]
fn every_error_of_every_file_and_of_the_selection_is_found_in_one_pass() {
    let first = rule("A", "proc.nmae = x", "")
        + "- list: l\n  items: [x]\n  append: true\n"
        + &rule("B", "evt.type = execve and (", "");
    // Errors in disabled rules are errors too: the configuration may enable them.
    let second = rule("C", "evt.type = execve", "  enabled: false\n")
        .replace("o %proc.name", "o %proc.nope");
    let selection = Selection {
        disable_rules: vec!["Nope".into()],
        enable_tags: vec!["no-such-tag".into()],
        ..Selection::default()
    };
    let errors = build(&[("one.yaml", &first), ("two.yaml", &second)], &selection).unwrap_err();
    let places: Vec<_> = errors
        .files
        .iter()
        .map(|e| format!("{}:{}", e.file, e.line))
        .collect();
    assert_eq!(
        places,
        ["one.yaml:6", "one.yaml:3", "one.yaml:11", "two.yaml:1"]
    );
    let selection: Vec<_> = errors.selection.iter().map(ToString::to_string).collect();
    assert_eq!(
        selection,
        [
            "disable_rules: no rule is named \"Nope\"",
            "enable_tags: no rule has the tag \"no-such-tag\""
        ]
    );
    assert_eq!(errors.to_string().lines().count(), 6);
}

#[test]
fn selection_by_tag_name_and_priority_with_names_beating_tags() {
    let text = tagged("Shell", "WARNING", "shell, mitre_execution")
        + &tagged("Net", "NOTICE", "network")
        + &tagged("Loud", "DEBUG", "network")
        + &tagged("Off", "CRITICAL", "shell").replace("tags:", "enabled: false\n  tags:");
    let sources = [("t.yaml", text.as_str())];
    let run = |selection: Selection| -> Vec<String> {
        let set = build(&sources, &selection).unwrap_or_else(|e| panic!("{e}"));
        let summary = &set.summary;
        assert_eq!(
            summary.rules_enabled + summary.rules_disabled + summary.rules_skipped,
            4
        );
        set.rules().iter().map(|r| r.name.clone()).collect()
    };
    assert_eq!(run(Selection::default()), ["Shell", "Net", "Loud"]);
    // A tag turns on a rule its file disabled.
    assert_eq!(
        run(Selection {
            enable_tags: vec!["shell".into()],
            ..Selection::default()
        }),
        ["Shell", "Net", "Loud", "Off"]
    );
    // Disabling a tag wins over enabling another the rule also carries.
    assert_eq!(
        run(Selection {
            enable_tags: vec!["shell".into()],
            disable_tags: vec!["mitre_execution".into(), "network".into()],
            ..Selection::default()
        }),
        ["Off"]
    );
    // Names beat tags.
    assert_eq!(
        run(Selection {
            disable_tags: vec!["network".into()],
            enable_rules: vec!["Net".into()],
            disable_rules: vec!["Shell".into()],
            ..Selection::default()
        }),
        ["Net"]
    );
    // The minimum priority beats everything.
    assert_eq!(
        run(Selection {
            enable_rules: vec!["Loud".into(), "Off".into()],
            min_priority: Priority::Notice,
            ..Selection::default()
        }),
        ["Shell", "Net", "Off"]
    );
    let set = build(
        &sources,
        &Selection {
            disable_tags: vec!["network".into()],
            ..Selection::default()
        },
    )
    .unwrap();
    assert_eq!(state(&set, "Net"), &Err(Reason::Tag("network".into())));
    assert_eq!(state(&set, "Off"), &Err(Reason::File));
    let both = build(
        &sources,
        &Selection {
            enable_rules: vec!["Net".into()],
            disable_rules: vec!["Net".into()],
            ..Selection::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        both.to_string(),
        "disable_rules: \"Net\" is also in enable_rules"
    );
}
