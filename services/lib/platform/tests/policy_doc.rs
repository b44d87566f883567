//! docs/security.md shows the authorisation table as it is in the code. `UPDATE_DOCS=1 cargo test
//! -p rz-platform --test policy_doc` rewrites the part between the markers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

const BEGIN: &str =
    "<!-- policy:begin (generated from services/lib/platform/src/authz/policy.rs) -->\n";
const END: &str = "<!-- policy:end -->";

#[test]
fn the_security_doc_shows_the_policy_table_as_it_is() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/security.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = doc.find(END).expect("the end marker");
    let table = rz_platform::authz::policy::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{table}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "docs/security.md is behind the policy table: run UPDATE_DOCS=1 cargo test -p rz-platform --test policy_doc"
    );
}
