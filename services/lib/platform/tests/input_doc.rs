//! README.md shows the input limits as they are in the code. `UPDATE_DOCS=1 cargo test -p
//! rz-platform --test input_doc` rewrites the part between the markers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

const BEGIN: &str = "<!-- limits:begin (generated from services/lib/platform/src/input.rs) -->\n";
const END: &str = "<!-- limits:end -->";

#[test]
fn the_readme_shows_the_input_limits_as_they_are() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../README.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = doc.find(END).expect("the end marker");
    let table = rz_platform::input::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{table}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "README.md is behind the input limits: run UPDATE_DOCS=1 cargo test -p rz-platform --test input_doc"
    );
}
