//! The rule language end to end: files → rule set → matches on events.

#![allow(clippy::unwrap_used, reason = "test assertions")]

use vigil_proto::v1::{Ancestor, Args, Event, EventType, PodMeta, Priority, SocketAddress};
use vigil_rules::{RuleSet, Syscalls};

fn exec(comm: &str, argv: &[&str]) -> Event {
    Event {
        r#type: EventType::Exec as i32,
        syscall: "execve".into(),
        comm: comm.into(),
        exe_path: format!("/usr/bin/{comm}"),
        cmdline: argv.iter().map(|s| (*s).to_owned()).collect(),
        container_id: "0123456789abcdef".into(),
        ancestors: vec![Ancestor {
            pid: 1,
            comm: "bash".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn open(path: &str, flags: u32) -> Event {
    Event {
        r#type: EventType::Open as i32,
        syscall: "openat".into(),
        comm: "cat".into(),
        args: Some(Args {
            path: path.into(),
            flags,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn connect(ip: &str, port: u32) -> Event {
    Event {
        r#type: EventType::Connect as i32,
        syscall: "connect".into(),
        comm: "curl".into(),
        args: Some(Args {
            address: Some(SocketAddress {
                family: 1,
                ip: ip.into(),
                port,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn load(sources: &[(&str, &str)]) -> RuleSet {
    RuleSet::load_sources(sources).unwrap_or_else(|e| panic!("{e}"))
}

fn names(set: &RuleSet, event: &Event) -> Vec<String> {
    set.matching(event).map(|r| r.name.clone()).collect()
}

fn rule(name: &str, condition: &str) -> String {
    format!(
        "- rule: {name}\n  desc: d\n  condition: {condition}\n  output: o %proc.name\n  priority: WARNING\n"
    )
}

#[test]
fn every_operator_evaluates() {
    let cases: &[(&str, &Event, bool)] = &[
        ("proc.name = sh", &exec("sh", &["sh"]), true),
        ("proc.name == sh", &exec("bash", &["bash"]), false),
        ("proc.name != sh", &exec("bash", &["bash"]), true),
        ("proc.pid < 10", &exec("sh", &["sh"]), true),
        ("proc.pid <= 0", &exec("sh", &["sh"]), true),
        ("proc.pid > 0", &exec("sh", &["sh"]), false),
        ("proc.pid >= 0", &exec("sh", &["sh"]), true),
        (
            "proc.cmdline contains '-c id'",
            &exec("sh", &["sh", "-c", "id"]),
            true,
        ),
        (
            "proc.cmdline icontains '-C ID'",
            &exec("sh", &["sh", "-c", "id"]),
            true,
        ),
        ("fd.name startswith /etc/", &open("/etc/passwd", 0), true),
        ("fd.name endswith passwd", &open("/etc/passwd", 0), true),
        ("fd.name glob '/etc/*'", &open("/etc/passwd", 0), true),
        ("fd.name glob '/etc/*'", &open("/etc/ssh/x", 0), false),
        ("fd.name regex '/etc/pass.*'", &open("/etc/passwd", 0), true),
        ("fd.name regex 'pass'", &open("/etc/passwd", 0), false),
        ("proc.name in (sh, bash)", &exec("sh", &["sh"]), true),
        (
            "proc.aname intersects (bash, zsh)",
            &exec("sh", &["sh"]),
            true,
        ),
        ("proc.aname in (zsh)", &exec("sh", &["sh"]), false),
        ("fd.name pmatch (/etc, /root)", &open("/etc/ssh/x", 0), true),
        ("fd.name pmatch (/et)", &open("/etc/ssh/x", 0), false),
        ("fd.name exists", &open("/etc", 0), true),
        ("fd.name exists", &exec("sh", &["sh"]), false),
        ("not fd.name exists", &exec("sh", &["sh"]), true),
        (
            "fd.sip = 169.254.169.254",
            &connect("169.254.169.254", 80),
            true,
        ),
        (
            "fd.net = 169.254.0.0/16",
            &connect("169.254.169.254", 80),
            true,
        ),
        (
            "fd.snet in (10.0.0.0/8)",
            &connect("169.254.169.254", 80),
            false,
        ),
        ("fd.sport in (80, 443)", &connect("1.1.1.1", 443), true),
        ("evt.arg.flags contains O_TRUNC", &open("/x", 0o1001), true),
        ("evt.is_open_write = true", &open("/x", 0o1), true),
        ("tolower(proc.name) = sh", &exec("SH", &["SH"]), true),
        (
            "proc.name = val(proc.pname)",
            &exec("bash", &["bash"]),
            true,
        ),
        (
            "fd.name startswith oneof (/tmp, /etc)",
            &open("/etc/x", 0),
            true,
        ),
        (
            "proc.cmdline contains allof (a, b)",
            &exec("x", &["x", "a"]),
            false,
        ),
        // Absent fields make comparisons false, even `!=`.
        ("fd.name != /x", &exec("sh", &["sh"]), false),
    ];
    for (condition, event, expected) in cases {
        let text = rule("r", &format!("'{}'", condition.replace('\'', "''")));
        let set = load(&[("t.yaml", &text)]);
        assert_eq!(set.rules()[0].matches(event), *expected, "{condition}");
    }
}

#[test]
fn lists_macros_and_overrides_apply_in_file_order() {
    let base = format!(
        "- list: shells\n  items: [sh]\n- list: more\n  items: [shells, zsh]\n\
         - macro: spawned\n  condition: evt.type = execve\n{}{}",
        rule("Shell", "spawned and proc.name in (more)"),
        rule("Other", "spawned and proc.name = never"),
    );
    let local = "- list: shells\n  items: [bash]\n  override:\n    items: append\n\
                 - macro: spawned\n  condition: and proc.tty = 0\n  append: true\n\
                 - rule: Shell\n  priority: CRITICAL\n  tags: [T1059]\n  override:\n    priority: replace\n    tags: append\n\
                 - rule: Other\n  enabled: false\n";
    let set = load(&[("base.yaml", &base), ("local.yaml", local)]);
    assert_eq!(set.rules().len(), 1, "Other is disabled");
    let shell = &set.rules()[0];
    assert_eq!(shell.priority, Priority::Critical);
    assert_eq!(shell.tags, ["T1059"]);
    // `more` was spliced from `shells` before the append: bash is not in it.
    assert_eq!(names(&set, &exec("sh", &["sh"])), ["Shell"]);
    assert_eq!(names(&set, &exec("zsh", &["zsh"])), ["Shell"]);
    assert!(names(&set, &exec("bash", &["bash"])).is_empty());
    let mut with_tty = exec("sh", &["sh"]);
    with_tty.tty = 34816;
    assert!(
        names(&set, &with_tty).is_empty(),
        "appended macro condition"
    );
    // A later plain definition replaces the rule.
    let replaced = load(&[("a", &base), ("b", &rule("Shell", "proc.name = zsh"))]);
    assert!(names(&replaced, &exec("sh", &["sh"])).is_empty());
}

#[test]
fn exceptions_exclude_tuples() {
    let text = format!(
        "{}  exceptions:\n    - name: known\n      fields: [proc.name, fd.directory]\n      comps: [=, startswith]\n      values:\n        - [cat, /etc/ssl]\n    - name: procs\n      fields: proc.pname\n      values: [systemd]\n",
        rule("Etc", "evt.type = openat and fd.name startswith /etc/")
    );
    let set = load(&[("t", &text)]);
    assert_eq!(names(&set, &open("/etc/passwd", 0)), ["Etc"]);
    assert!(names(&set, &open("/etc/ssl/certs/x", 0)).is_empty());
    let mut from_systemd = open("/etc/passwd", 0);
    from_systemd.ancestors = vec![Ancestor {
        comm: "systemd".into(),
        ..Default::default()
    }];
    assert!(names(&set, &from_systemd).is_empty());
}

#[test]
fn events_meet_only_the_rules_of_their_type() {
    let text = format!(
        "{}{}{}",
        rule("Exec", "evt.type in (execve, execveat) and proc.name = sh"),
        rule("Open", "evt.type = openat"),
        rule(
            "Both",
            "(evt.type = openat and fd.name = /x) or (evt.type = execve)"
        ),
    );
    let set = load(&[("t", &text)]);
    let names_of = |e: &Event| -> Vec<&str> {
        set.candidates(e)
            .iter()
            .map(|i| set.rules()[*i as usize].name.as_str())
            .collect()
    };
    assert_eq!(names_of(&exec("sh", &["sh"])), ["Exec", "Both"]);
    assert_eq!(names_of(&open("/x", 0)), ["Open", "Both"]);
    assert!(names_of(&connect("1.1.1.1", 1)).is_empty());
    assert_eq!(
        set.syscalls(),
        Syscalls::Only(["execve", "execveat", "openat"].map(String::from).into())
    );
    let any = load(&[("t", &rule("Any", "proc.name = sh"))]);
    assert_eq!(any.syscalls(), Syscalls::All);
    assert_eq!(names(&any, &exec("sh", &["sh"])), ["Any"]);
}

#[test]
fn outputs_render_fields() {
    let text = "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: shell %proc.cmdline in %container.id pod=%k8s.pod.name\n  priority: notice\n";
    let set = load(&[("t", text)]);
    let mut event = exec("sh", &["sh", "-i"]);
    event.pod = Some(PodMeta {
        name: "web".into(),
        ..Default::default()
    });
    let rendered = set.rules()[0].output.render(&event);
    assert_eq!(rendered.text, "shell sh -i in 0123456789ab pod=web");
}

fn error(sources: &[(&str, &str)]) -> String {
    RuleSet::load_sources(sources).unwrap_err().to_string()
}

#[test]
fn errors_name_file_line_column_and_what() {
    let bad_yaml = error(&[("bad.yaml", "- rule: x\n  desc: [a\n")]);
    assert!(bad_yaml.starts_with("bad.yaml:"), "{bad_yaml}");
    let field = error(&[(
        "f.yaml",
        &format!("- list: l\n  items: []\n{}", rule("R", "proc.nmae = sh")),
    )]);
    assert!(field.starts_with("f.yaml:5:14:"), "{field}");
    assert!(field.contains("unknown field `proc.nmae`"), "{field}");
    let macro_error = error(&[("m.yaml", &rule("R", "evt.type = execve and shell_procs"))]);
    assert!(
        macro_error.contains("unknown macro `shell_procs`"),
        "{macro_error}"
    );
    let syntax = error(&[("s.yaml", &rule("R", "proc.name = sh and (fd.name = x"))]);
    assert!(
        syntax.starts_with("s.yaml:3:45:") && syntax.contains("expected `)`"),
        "{syntax}"
    );
    let priority = error(&[(
        "p.yaml",
        "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: LOUD\n",
    )]);
    assert!(
        priority.starts_with("p.yaml:5:13:") && priority.contains("LOUD"),
        "{priority}"
    );
    let missing = error(&[(
        "k.yaml",
        "- rule: R\n  desc: d\n  output: o\n  priority: info\n",
    )]);
    assert!(missing.contains("expected key `condition`"), "{missing}");
    let version = error(&[("v.yaml", "- required_engine_version: 9.0.0\n")]);
    assert!(
        version.contains("requires engine version 9.0.0"),
        "{version}"
    );
    let output = error(&[(
        "o.yaml",
        "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: '%proc.nope'\n  priority: info\n",
    )]);
    assert!(output.contains("%proc.nope"), "{output}");
    let cycle = error(&[(
        "c.yaml",
        &format!(
            "- macro: a\n  condition: b\n- macro: b\n  condition: a\n{}",
            rule("R", "a")
        ),
    )]);
    assert!(cycle.contains("refers to itself"), "{cycle}");
    let append = error(&[("a.yaml", "- list: l\n  items: [x]\n  append: true\n")]);
    assert!(
        append.starts_with("a.yaml:1:3:") && append.contains("not defined before"),
        "{append}"
    );
}

#[test]
fn local_files_append_exception_values() {
    let base = format!(
        "{}  exceptions:\n    - name: readers\n      fields: proc.name\n      values: [sshd]\n",
        rule("Etc", "evt.type = openat and fd.name = /etc/shadow")
    );
    let local = "- rule: Etc\n  exceptions:\n    - name: readers\n      values: [[cat]]\n  override:\n    exceptions: append\n";
    let before = load(&[("base.yaml", &base)]);
    assert_eq!(names(&before, &open("/etc/shadow", 0)), ["Etc"]);
    let after = load(&[("base.yaml", &base), ("local.yaml", local)]);
    assert!(
        names(&after, &open("/etc/shadow", 0)).is_empty(),
        "cat is now excepted"
    );
    let mut sshd = open("/etc/shadow", 0);
    sshd.comm = "sshd".into();
    assert!(
        names(&after, &sshd).is_empty(),
        "the pack's exception still holds"
    );
    let mut tail = open("/etc/shadow", 0);
    tail.comm = "tail".into();
    assert_eq!(names(&after, &tail), ["Etc"]);
}
