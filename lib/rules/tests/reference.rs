//! The checked-in fields reference is the one the field table generates.

use std::path::Path;

#[test]
fn docs_rules_fields_md_matches_the_field_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules/fields.md");
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        checked_in == vigil_rules::fields::reference(),
        "{} is out of date: regenerate it with \
         `cargo run -p vigil-detectors -- rules fields --markdown > docs/rules/fields.md`",
        path.display()
    );
}
