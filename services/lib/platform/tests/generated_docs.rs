//! The documentation shows the tables as they are in the code: the authorisation policy in
//! docs/security.md and the input limits in README.md. `UPDATE_DOCS=1 cargo test -p rz-platform
//! --test generated_docs` rewrites the parts between the markers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Checks (or, with `UPDATE_DOCS`, rewrites) the part of `file` (relative to the repository)
/// between `<!-- {name}:begin (generated from {source}) -->` and `<!-- {name}:end -->`.
fn generated(file: &str, name: &str, source: &str, table: String) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(file);
    let begin = format!("<!-- {name}:begin (generated from {source}) -->\n");
    let end_marker = format!("<!-- {name}:end -->");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(&begin).expect("the begin marker") + begin.len();
    let end = doc.find(&end_marker).expect("the end marker");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{table}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "{file} is behind {source}: run UPDATE_DOCS=1 cargo test -p rz-platform --test generated_docs"
    );
}

#[test]
fn the_security_doc_shows_the_policy_table_as_it_is() {
    generated(
        "docs/security.md",
        "policy",
        "services/lib/platform/src/authz/policy.rs",
        rz_platform::authz::policy::markdown(),
    );
}

#[test]
fn the_readme_shows_the_input_limits_as_they_are() {
    generated(
        "README.md",
        "limits",
        "services/lib/platform/src/input.rs",
        rz_platform::input::markdown(),
    );
}
