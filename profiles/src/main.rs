//! `vigil-profile`: learns seccomp and AppArmor profiles (issue 8; being built).

fn main() -> std::process::ExitCode {
    eprintln!("vigil-profile: not built yet (issue 8)");
    std::process::ExitCode::from(2)
}
