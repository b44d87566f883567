//! The region's municipalities and their names, read from the region file that registration's
//! catalogue comes from (`services/registration/regions/<region>.toml`; the Achterhoek's is built in).
//! Letters name the municipality that writes them; no name is written in the code.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The Achterhoek region file, the default when `notification.region_file` is not set.
pub const ACHTERHOEK: &str = include_str!("../../registration/regions/achterhoek.toml");

/// A region: its name, its municipalities by CBS code, and the segment and subsegment codes of
/// its catalogue (what a webhook's segment filter may name).
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    municipalities: BTreeMap<String, String>,
    segments: BTreeSet<String>,
}

#[derive(Deserialize)]
struct File {
    region: String,
    municipalities: Vec<Municipality>,
    #[serde(default)]
    lots: Vec<Lot>,
}

#[derive(Deserialize)]
struct Lot {
    #[serde(default)]
    segments: Vec<Segment>,
}

#[derive(Deserialize)]
struct Segment {
    code: String,
    #[serde(default)]
    subsegments: Vec<Subsegment>,
}

#[derive(Deserialize)]
struct Subsegment {
    code: String,
}

#[derive(Deserialize)]
struct Municipality {
    code: String,
    name: String,
}

impl Region {
    /// Reads the `region` name and the `municipalities` of a region file; the rest of the file
    /// (the catalogue) is registration's.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut municipalities = BTreeMap::new();
        for m in file.municipalities {
            let code = rz_domain::GemeenteCode::parse(&m.code)
                .map_err(|e| format!("municipalities: `{}`: {}", m.code, e.rule))?;
            if m.name.trim().is_empty() {
                return Err(format!("municipalities: {code} has no name"));
            }
            if municipalities.insert(code.to_string(), m.name).is_some() {
                return Err(format!("municipalities: {code} is listed twice"));
            }
        }
        // A segment without subsegments is contracted as a whole under its own code.
        let segments = file
            .lots
            .iter()
            .flat_map(|l| &l.segments)
            .flat_map(|s| {
                std::iter::once(s.code.clone()).chain(s.subsegments.iter().map(|x| x.code.clone()))
            })
            .collect();
        Ok(Self {
            name: file.region,
            municipalities,
            segments,
        })
    }

    /// The built-in Achterhoek.
    pub fn achterhoek() -> Result<Self, String> {
        Self::from_toml(ACHTERHOEK)
    }

    /// Whether `code` (a CBS code) is a municipality of the region.
    pub fn has_municipality(&self, code: &str) -> bool {
        self.municipalities.contains_key(code)
    }

    /// Whether `code` is a segment or subsegment code of the region's catalogue.
    pub fn has_segment(&self, code: &str) -> bool {
        self.segments.contains(code)
    }

    /// The name of municipality `code`; a code outside the region is named by itself.
    pub fn municipality_name(&self, code: &str) -> String {
        self.municipalities
            .get(code)
            .cloned()
            .unwrap_or_else(|| code.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_region_file() {
        let r = Region::achterhoek().unwrap();
        assert_eq!(r.name, "Achterhoek");
        assert_eq!(r.municipality_name("1509"), "Oude IJsselstreek");
        assert_eq!(r.municipality_name("0222"), "Doetinchem");
        assert_eq!(r.municipality_name("0363"), "0363");
        assert!(r.has_municipality("0222") && !r.has_municipality("0363"));
        for code in ["IAJ", "IAJ-ON", "WIO", "ZHZ", "HBH"] {
            assert!(r.has_segment(code), "{code}");
        }
        for code in ["JH", "WMO", "iaj", "IAJ-XX", ""] {
            assert!(!r.has_segment(code), "{code}");
        }
        let other = Region::from_toml(
            "region = \"Twente\"\nmunicipalities = [{ code = \"0153\", name = \"Enschede\" }]",
        )
        .unwrap();
        assert_eq!(other.municipality_name("0153"), "Enschede");
        assert!(
            Region::from_toml("region = \"X\"\nmunicipalities = [{ code = \"12\", name = \"Y\" }]")
                .is_err()
        );
    }
}
