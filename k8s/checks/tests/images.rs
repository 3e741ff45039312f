//! Every image a manifest names is one `scripts/images` builds (or the one
//! third-party image, NATS), in every overlay, and every image the script
//! builds is used: a renamed image or a changed version cannot leave the
//! manifests pointing at something nobody builds.
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::collections::BTreeSet;
use std::process::Command;

use vigil_k8s_checks::pss;
use vigil_k8s_checks::render::{k8s_dir, overlays, render};

/// Images the manifests may name that Vigil does not build: pulled from
/// their registry by a cluster (podman kube play swaps NATS for
/// `scripts/images nats`, k8s/README.md "Images").
const THIRD_PARTY: &[&str] = &["docker.io/library/nats:2.11.4-alpine"];

/// `scripts/images --list`: the images the script builds, by name:tag.
fn built_images() -> BTreeSet<String> {
    let script = k8s_dir().join("../scripts/images");
    let output = Command::new(&script)
        .arg("--list")
        .output()
        .unwrap_or_else(|error| panic!("{}: {error}", script.display()));
    assert!(
        output.status.success(),
        "{} --list failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let images: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(images.len(), 6, "one image per service: {images:?}");
    images
}

#[test]
fn every_image_a_manifest_names_is_built_by_scripts_images() {
    let built = built_images();
    for overlay in overlays().unwrap() {
        let mut named = BTreeSet::new();
        for object in render(&overlay).unwrap() {
            let Some(template) = pss::pod_template(&object) else {
                continue;
            };
            let spec = template.spec.unwrap();
            let containers = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            for container in containers {
                let at = format!("{}: {}", object.id(), container.name);
                let image = container.image.clone().unwrap_or_default();
                assert!(
                    built.contains(&image) || THIRD_PARTY.contains(&image.as_str()),
                    "{} {at}: image {image:?} is neither built by scripts/images ({built:?}) \
                     nor a known third-party image ({THIRD_PARTY:?})",
                    overlay.display()
                );
                named.insert(image);
            }
        }
        let unused: Vec<_> = built.difference(&named).collect();
        assert!(
            unused.is_empty(),
            "{}: scripts/images builds {unused:?}, which no manifest uses",
            overlay.display()
        );
    }
}
