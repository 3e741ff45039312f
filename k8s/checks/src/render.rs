//! `kubectl kustomize` on an overlay.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::objects::{self, Object, ParseError};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot run kubectl (install Debian's kubernetes-client or kubectl): {0}")]
    Spawn(#[source] std::io::Error),
    #[error("kubectl kustomize {dir} failed: {stderr}")]
    Failed { dir: PathBuf, stderr: String },
    #[error("kubectl kustomize {dir} printed something that is not YAML objects: {source}")]
    Parse {
        dir: PathBuf,
        #[source]
        source: ParseError,
    },
}

/// The `k8s/` folder of this checkout.
pub fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("k8s"))
}

/// Every overlay under `k8s/overlays`, sorted by name.
pub fn overlays() -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(k8s_dir().join("overlays"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("kustomization.yaml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Renders `dir` (a kustomization) to YAML text.
pub fn render_text(dir: &Path) -> Result<String, RenderError> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(RenderError::Spawn)?;
    if !output.status.success() {
        return Err(RenderError::Failed {
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Renders `dir` and parses the objects.
pub fn render(dir: &Path) -> Result<Vec<Object>, RenderError> {
    let text = render_text(dir)?;
    objects::parse(&text).map_err(|source| RenderError::Parse {
        dir: dir.to_path_buf(),
        source,
    })
}
