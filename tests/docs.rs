//! `docs/components.md` is generated from the component specs; this test fails when it drifts.
//! Regenerate with `UPDATE_DOCS=1 cargo test --workspace --test docs`.

const HEADER: &str = "# Components\n\n<!-- Generated from the component specs by tests/docs.rs; do not edit by hand. -->\n\n\
Every component built into `osiris`, with its modes, connection and config keys. \
`osiris components show NAME` prints the same from the binary. \
Unknown config keys are validation errors; defaults are filled into `cfg/<step>.json` at compile time.\n\n";

#[test]
fn components_reference_matches_the_specs() {
    let registry = osiris_adapters::components::builtin_registry();
    let mut expected = HEADER.to_string();
    for component in registry.iter() {
        expected.push_str(&component.spec().markdown());
        expected.push('\n');
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/components.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/components.md is out of date: run UPDATE_DOCS=1 cargo test --workspace --test docs"
    );
}
