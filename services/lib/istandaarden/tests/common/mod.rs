//! Shared test helpers: locating the official schemas and validating with `xmllint`.
//!
//! The schemas live in `shared/istandaarden/` beside the repository (CI clones it there): the
//! nearest `shared/istandaarden` above the crate that includes this module. A missing folder or a
//! missing `xmllint`
//! FAILS the tests (they are never skipped).
//!
//! The iWmo return messages (WMO306, WMO308, WMO316, WMO318, WMO325) have no published XSD in that folder.
//! They mirror the iJw ones, so [`wmo_return_xsd`] derives each at test time from the JW XSD:
//! `jw3` -> `wmo3` (message namespace and prefix), `ijw` -> `iwmo` (standard, basisschema
//! namespace and prefix), the fixed BerichtCode (439 -> 419, 441 -> 421, 447 -> 445,
//! 487 -> 481, 491 -> 485, list COD002) and the appinfo versions `0.1.0` -> `1.0.0`; the derived schema
//! imports the iWmo `basisschema.xsd`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn schema_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let complete =
        |r: &Path| r.join("ijw-3.2/JW301.xsd").is_file() && r.join("iwmo-3.2/WMO301.xsd").is_file();
    let root = manifest
        .ancestors()
        .map(|d| d.join("shared/istandaarden"))
        .find(|r| complete(r))
        .unwrap_or_else(|| manifest.join("shared/istandaarden"));
    assert!(
        complete(&root),
        "the official iStandaarden schemas are missing: expected them in {} \
         (clone the shared/ folder beside the repository)",
        root.display()
    );
    root
}

pub fn data(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn tmp_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rz-istandaarden");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The XSD of message `name` (`JW301`, `WMO306`, ...); iWmo return messages are derived.
pub fn xsd(name: &str) -> PathBuf {
    let root = schema_root();
    if let Some(n) = name.strip_prefix("JW") {
        return root.join(format!("ijw-3.2/JW{n}.xsd"));
    }
    let n = name.strip_prefix("WMO").expect("JW or WMO");
    match n {
        "306" | "308" | "316" | "318" | "325" => wmo_return_xsd(n),
        _ => root.join(format!("iwmo-3.2/WMO{n}.xsd")),
    }
}

/// Derives WMO306/308/316/318.xsd from JW306/308/316/318.xsd (see the module docs), once per
/// test process, into a folder of its own (so parallel tests never see a half-written file).
pub fn wmo_return_xsd(n: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(derive_wmo_returns);
    assert!(
        ["306", "308", "316", "318", "325"].contains(&n),
        "no iWmo return message {n}"
    );
    dir.join(format!("WMO{n}.xsd"))
}

fn derive_wmo_returns() -> PathBuf {
    let root = schema_root();
    let dir = tmp_dir().join(format!("derived-iwmo-3.2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root.join("iwmo-3.2/basisschema.xsd"),
        dir.join("basisschema.xsd"),
    )
    .unwrap();
    for (n, jw_code, wmo_code) in [
        ("306", "439", "419"),
        ("308", "441", "421"),
        ("316", "447", "445"),
        ("318", "487", "481"),
        ("325", "491", "485"),
    ] {
        let jw = std::fs::read_to_string(root.join(format!("ijw-3.2/JW{n}.xsd"))).unwrap();
        let pattern = format!("<xs:pattern value=\"{jw_code}\"/>");
        assert!(
            jw.contains(&pattern),
            "JW{n}.xsd does not fix BerichtCode {jw_code}"
        );
        let wmo = jw
            .replace("jw3", "wmo3")
            .replace("ijw", "iwmo")
            .replace(&pattern, &format!("<xs:pattern value=\"{wmo_code}\"/>"))
            .replace(">0.1.0<", ">1.0.0<");
        std::fs::write(dir.join(format!("WMO{n}.xsd")), wmo).unwrap();
    }
    dir
}

fn next() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `xmllint --noout --schema XSD FILE`; Err carries xmllint's output.
pub fn xmllint(xsd: &Path, xml: &[u8]) -> Result<(), String> {
    let file = tmp_dir().join(format!("msg-{}-{}.xml", std::process::id(), next()));
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(xsd)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}); install it (Debian package libxml2-utils)")
        });
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Asserts that `xml` is valid against the XSD of message `name`.
pub fn assert_valid(name: &str, xml: &str) {
    if let Err(e) = xmllint(&xsd(name), xml.as_bytes()) {
        panic!("{name} is not valid against its XSD:\n{e}\n--- message ---\n{xml}");
    }
}
