//! Prints a file `podman kube play` runs, made from an overlay
//! (k8s/README.md, "Images"):
//!
//!   vigil-podman-play k8s/overlays/dev [--first-ip 10.89.100.10] [--node NAME] [--kube-api URL]
//!                     [--image docker.io/library/nats:=localhost/vigil-nats:2.15.1]
//!
//! The YAML goes to stdout; the `--ip` arguments for `podman kube play` (one
//! per pod, in order) and every change made go to stderr.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use vigil_k8s_checks::podman::{Options, generate};
use vigil_k8s_checks::render::render;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-podman-play: {error}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut overlay = None;
    let mut options = Options {
        first_ip: Ipv4Addr::new(10, 89, 100, 10),
        node_name: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned()),
        images: Vec::new(),
        kube_api_url: None,
        default_seccomp: std::fs::read_to_string("/usr/share/containers/seccomp.json").ok(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--first-ip" => {
                let text = value("--first-ip")?;
                options.first_ip = text
                    .parse()
                    .map_err(|e| format!("--first-ip {text}: {e}"))?;
            }
            "--node" => options.node_name = value("--node")?,
            "--kube-api" => options.kube_api_url = Some(value("--kube-api")?),
            "--image" => {
                let text = value("--image")?;
                let (prefix, image) = text
                    .split_once('=')
                    .ok_or(format!("--image {text}: expected PREFIX=IMAGE"))?;
                options.images.push((prefix.to_owned(), image.to_owned()));
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            dir => overlay = Some(PathBuf::from(dir)),
        }
    }
    let overlay = overlay.ok_or("usage: vigil-podman-play OVERLAY_DIR [--first-ip IP] [--node NAME] [--kube-api URL] [--image PREFIX=IMAGE]")?;
    let objects = render(&overlay).map_err(|e| e.to_string())?;
    let play = generate(&objects, &options).map_err(|e| e.to_string())?;
    print!("{}", play.yaml);
    for (file, profile) in &play.seccomp_profiles {
        std::fs::write(file, profile).map_err(|e| format!("{file}: {e}"))?;
        eprintln!("wrote {file}: pass --seccomp-profile-root $PWD to podman kube play");
    }
    for change in &play.changes {
        eprintln!("changed: {change}");
    }
    let ips: Vec<String> = play.pods.iter().map(|p| format!("--ip {}", p.ip)).collect();
    eprintln!(
        "play with: podman kube play --network <net> {} FILE",
        ips.join(" ")
    );
    Ok(())
}
