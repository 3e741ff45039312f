//! `vigil-profile`: learn seccomp/AppArmor profiles from the collector's
//! events, report what a profile would block, run a command under one, and
//! run the breakout catalog.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use vigil_profiles::catalog::{self, CATALOG, Confinement, Scene};
use vigil_profiles::learn::{self, Observation, Selector};
use vigil_profiles::seccomp::{Mode, SeccompProfile};
use vigil_profiles::{apparmor, confine, patch, seccomp, source};

#[derive(Parser)]
#[command(
    name = "vigil-profile",
    about = "Profiles learned from behaviour, and the breakout catalog"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Learn <name>.json (seccomp), vigil-<name> (AppArmor) and <name>.patch.json.
    Learn(LearnArgs),
    /// Report the syscalls the profile would block for the workload's events (the log-only phase).
    Check {
        #[arg(long)]
        profile: PathBuf,
        #[command(flatten)]
        events: EventArgs,
    },
    /// Run a command under a seccomp profile (and optionally as another user, with no capabilities).
    Exec {
        #[arg(long)]
        seccomp: Option<PathBuf>,
        /// uid:gid to switch to before the filter is installed.
        #[arg(long, value_parser = parse_user)]
        user: Option<(u32, u32)>,
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Attempt every technique of the breakout catalog under a profile and print the share blocked.
    Catalog {
        #[arg(long)]
        seccomp: PathBuf,
        /// Run the attempts as uid/gid 65534 with no capabilities too (the restricted pod).
        #[arg(long)]
        restricted: bool,
    },
}

#[derive(Args)]
struct EventArgs {
    /// File of length-delimited vigil.v1.EventBatch messages.
    #[arg(long, conflicts_with = "nats")]
    events: Option<String>,
    /// NATS server to read VIGIL_EVENTS from.
    #[arg(long)]
    nats: Option<String>,
    /// Stop reading the stream after this many seconds without a message.
    #[arg(long, default_value_t = 2)]
    idle_secs: u64,
    /// The workload's container id.
    #[arg(long)]
    container: Option<String>,
    /// The workload's pod, as namespace/name.
    #[arg(long)]
    pod: Option<String>,
    /// A program in the workload's cgroup that is not the workload (repeatable;
    /// the runtimes' container inits are always ignored).
    #[arg(long)]
    ignore_program: Vec<String>,
}

#[derive(Args)]
struct LearnArgs {
    #[arg(long)]
    name: String,
    #[command(flatten)]
    events: EventArgs,
    #[arg(long)]
    out: PathBuf,
    /// Write enforcing profiles (after the log-only phase showed nothing to block).
    #[arg(long)]
    enforce: bool,
    /// Allow a syscall the observation missed (repeatable).
    #[arg(long)]
    allow: Vec<String>,
    /// Patch target: kind, namespace/name and container of the workload.
    #[arg(long, default_value = "Deployment")]
    kind: String,
    #[arg(long)]
    workload: Option<String>,
    #[arg(long)]
    container_name: Option<String>,
}

fn parse_user(text: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not uid:gid"))?;
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|e| format!("{s:?} in {text:?}: {e}"))
    };
    Ok((number(uid)?, number(gid)?))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil-profile: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Learn(args) => learn_profiles(args),
        Cmd::Check { profile, events } => check(&profile, &events),
        Cmd::Exec {
            seccomp,
            user,
            command,
        } => exec(seccomp.as_deref(), user, &command),
        Cmd::Catalog {
            seccomp,
            restricted,
        } => run_catalog(&seccomp, restricted),
    }
}

fn selector(args: &EventArgs) -> anyhow::Result<Selector> {
    let pod = match &args.pod {
        Some(text) => {
            let (ns, name) = text
                .split_once('/')
                .with_context(|| format!("--pod {text:?} is not namespace/name"))?;
            Some((ns.to_owned(), name.to_owned()))
        }
        None => None,
    };
    if args.container.is_none() && pod.is_none() {
        bail!("say which workload: --container ID or --pod NAMESPACE/NAME");
    }
    let mut ignore_programs: Vec<String> = learn::RUNTIME_INITS
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    ignore_programs.extend(args.ignore_program.iter().cloned());
    Ok(Selector {
        container_id: args.container.clone(),
        pod,
        ignore_programs,
    })
}

fn observe(args: &EventArgs) -> anyhow::Result<Observation> {
    let selector = selector(args)?;
    let observation = match (&args.events, &args.nats) {
        (Some(path), None) => source::read_file(path, &selector)?,
        (None, Some(url)) => tokio::runtime::Runtime::new()?.block_on(source::read_stream(
            url,
            &selector,
            Duration::from_secs(args.idle_secs),
        ))?,
        _ => bail!("say where events come from: --events FILE or --nats URL"),
    };
    if observation.events == 0 {
        bail!("no event of the workload was found; nothing to learn from");
    }
    Ok(observation)
}

fn learn_profiles(args: LearnArgs) -> anyhow::Result<ExitCode> {
    let observation = observe(&args.events)?;
    let profile = learn::learn(&args.name, observation, &args.allow);
    let mode = if args.enforce {
        Mode::Enforce
    } else {
        Mode::Log
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let seccomp_file = args.out.join(format!("{}.json", profile.name));
    write(
        &seccomp_file,
        &serde_json::to_string_pretty(&seccomp::render(&profile, mode))?,
    )?;
    write(
        &args.out.join(patch::apparmor_name(&profile.name)),
        &apparmor::render(&profile, mode),
    )?;
    let target = patch::Target {
        kind: args.kind.clone(),
        namespace: args
            .events
            .pod
            .as_deref()
            .and_then(|p| p.split_once('/'))
            .map(|(ns, _)| ns.to_owned())
            .unwrap_or_default(),
        name: args
            .workload
            .clone()
            .unwrap_or_else(|| profile.name.clone()),
        container: args
            .container_name
            .clone()
            .unwrap_or_else(|| profile.name.clone()),
    };
    write(
        &args.out.join(format!("{}.patch.json", profile.name)),
        &serde_json::to_string_pretty(&patch::render(&target, &profile.name))?,
    )?;
    println!(
        "learned {} from {} events: {} syscalls allowed ({} seen), {} files, {} programs; {}",
        profile.name,
        profile.observation.events,
        profile.allowed.len(),
        profile.observation.syscalls.len(),
        profile.observation.files_read.len() + profile.observation.files_written.len(),
        profile.observation.executables.len(),
        match mode {
            Mode::Log =>
                "LOG-ONLY: run the workload, `vigil-profile check`, then learn again with --enforce",
            Mode::Enforce => "enforcing",
        }
    );
    let seen: Vec<&str> = profile
        .observation
        .syscalls
        .keys()
        .map(String::as_str)
        .collect();
    println!("syscalls seen: {}", seen.join(" "));
    if !profile.observation.failed.is_empty() {
        let failed: Vec<&str> = profile
            .observation
            .failed
            .keys()
            .map(String::as_str)
            .collect();
        println!("seen failing, not learned: {}", failed.join(" "));
    }
    for warning in &profile.warnings {
        println!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn read_profile(path: &Path) -> anyhow::Result<SeccompProfile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a seccomp profile", path.display()))
}

fn check(path: &Path, events: &EventArgs) -> anyhow::Result<ExitCode> {
    let profile = read_profile(path)?;
    let allowed = profile
        .syscalls
        .iter()
        .filter(|r| r.action == "SCMP_ACT_ALLOW")
        .flat_map(|r| r.names.iter().cloned())
        .collect();
    let learned = learn::Profile {
        name: String::new(),
        allowed,
        observation: Observation::default(),
        warnings: Vec::new(),
    };
    let blocked = learn::would_block(&learned, &observe(events)?);
    if blocked.is_empty() {
        println!(
            "{}: nothing the workload did would be blocked",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (syscall, count) in &blocked {
        println!("would block {syscall} ({count} calls)");
    }
    Ok(ExitCode::from(3))
}

fn exec(
    profile: Option<&Path>,
    user: Option<(u32, u32)>,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let profile = profile.map(read_profile).transpose()?;
    let (program, args) = command.split_first().context("no command given")?;
    confine::confine(profile.as_ref(), user)?;
    let error = std::process::Command::new(program).args(args).exec();
    bail!("cannot execute {program}: {error}")
}

fn run_catalog(profile: &Path, restricted: bool) -> anyhow::Result<ExitCode> {
    let runner = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("vigil-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket_path = dir.join("runtime.sock");
    let _socket = std::os::unix::net::UnixListener::bind(&socket_path)?;
    std::fs::set_permissions(
        &socket_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let cgroup_procs =
        catalog::root_cgroup_procs().context("no cgroup hierarchy under /sys/fs/cgroup")?;
    let mut victim = std::process::Command::new("sleep").arg("60").spawn()?;
    let scene = Scene {
        dir: dir.clone(),
        victim_pid: victim.id(),
        runtime_socket: socket_path,
        cgroup_procs,
    };
    let confinement = if restricted {
        Confinement::Restricted(profile.to_path_buf())
    } else {
        Confinement::SeccompOnly(profile.to_path_buf())
    };
    let mut blocked = 0;
    for technique in CATALOG {
        let outcome = catalog::attempt(&runner, &confinement, technique, &scene);
        blocked += usize::from(outcome.blocked());
        println!(
            "{:<26} {:<28} {outcome:?}",
            technique.id,
            technique.syscalls.join(",")
        );
    }
    let _ = victim.kill();
    let _ = victim.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "blocked {blocked} of {} techniques ({:.1}%)",
        CATALOG.len(),
        100.0 * blocked as f64 / CATALOG.len() as f64
    );
    Ok(if blocked == CATALOG.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}
