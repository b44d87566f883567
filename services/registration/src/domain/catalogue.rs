//! The region's catalogue: municipalities, lots, segments and subsegments, read from a region file.

use rz_domain::{
    ExecutionVariant, Financing, GemeenteCode, Law, ProductCode, WmoProductCategory,
    YouthProductCategory,
};
use serde::Deserialize;

use super::RegistrationError;

/// The Achterhoek region file, built in.
pub const ACHTERHOEK: &str = include_str!("../../regions/achterhoek.toml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    pub region: String,
    pub municipalities: Vec<Municipality>,
    pub lots: Vec<Lot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    pub code: GemeenteCode,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub code: String,
    pub name: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub code: String,
    pub name: String,
    pub law: Law,
    /// The municipalities that buy this segment through the joint contracts.
    pub municipalities: Vec<GemeenteCode>,
    pub subsegments: Vec<Subsegment>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsegment {
    pub code: String,
    pub name: String,
    pub financing: Financing,
    /// JZ020 (youth) or WMO020 (Wmo) product category codes.
    pub product_categories: Vec<String>,
    /// The region's product codes (productcode, within the categories) that a decision of this
    /// subsegment may name. Required for PxQ (inspanningsgericht) and separately contracted
    /// (outputgericht) subsegments: their 301 message names the product.
    pub product_codes: Vec<ProductCode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    region: String,
    municipalities: Vec<RawMunicipality>,
    lots: Vec<RawLot>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMunicipality {
    code: String,
    name: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLot {
    code: String,
    name: String,
    segments: Vec<RawSegment>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    code: String,
    name: String,
    law: String,
    financing: String,
    #[serde(default)]
    excluded: Vec<String>,
    #[serde(default)]
    product_categories: Vec<String>,
    #[serde(default)]
    product_codes: Vec<String>,
    #[serde(default)]
    subsegments: Vec<RawSubsegment>,
    #[serde(default)]
    note: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubsegment {
    code: String,
    name: String,
    financing: Option<String>,
    product_categories: Vec<String>,
    #[serde(default)]
    product_codes: Vec<String>,
}

impl Catalogue {
    /// Parses and checks a region file: valid CBS codes, known laws, financings and product
    /// categories of the segment's law, unique codes.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let raw: RawRegion = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut municipalities = Vec::new();
        for m in raw.municipalities {
            let code = GemeenteCode::parse(&m.code)
                .map_err(|e| format!("municipality {}: {e}", m.code))?;
            municipalities.push(Municipality { code, name: m.name });
        }
        let mut seen = std::collections::HashSet::new();
        let mut lots = Vec::new();
        for l in raw.lots {
            let mut segments = Vec::new();
            for s in l.segments {
                let ctx = |e: &dyn std::fmt::Display| format!("segment {}: {e}", s.code);
                let law = Law::from_code(&s.law).map_err(|e| ctx(&e))?;
                let financing = Financing::from_code(&s.financing).map_err(|e| ctx(&e))?;
                for x in &s.excluded {
                    if !municipalities.iter().any(|m| m.code.as_str() == x) {
                        return Err(ctx(&format!(
                            "excluded municipality {x} is not in the region"
                        )));
                    }
                }
                let participating = municipalities
                    .iter()
                    .filter(|m| !s.excluded.iter().any(|x| x == m.code.as_str()))
                    .map(|m| m.code.clone())
                    .collect();
                let raw_subs = if s.subsegments.is_empty() {
                    vec![RawSubsegment {
                        code: s.code.clone(),
                        name: s.name.clone(),
                        financing: None,
                        product_categories: s.product_categories.clone(),
                        product_codes: s.product_codes.clone(),
                    }]
                } else {
                    s.subsegments
                };
                let mut subsegments = Vec::new();
                for ss in raw_subs {
                    let financing = match &ss.financing {
                        Some(f) => Financing::from_code(f).map_err(|e| ctx(&e))?,
                        None => financing,
                    };
                    for pc in &ss.product_categories {
                        let ok = match law {
                            Law::Jeugdwet => YouthProductCategory::parse(pc).is_ok(),
                            Law::Wmo => WmoProductCategory::parse(pc).is_ok(),
                        };
                        if !ok {
                            return Err(ctx(&format!(
                                "{pc} is not a product category of the {} list",
                                law.code()
                            )));
                        }
                    }
                    let mut product_codes = Vec::new();
                    for pc in &ss.product_codes {
                        let code = ProductCode::parse(pc).map_err(|e| {
                            ctx(&format!("subsegment {}: product_codes: {e}", ss.code))
                        })?;
                        if product_codes.contains(&code) {
                            return Err(ctx(&format!(
                                "subsegment {}: product code {pc} is listed twice",
                                ss.code
                            )));
                        }
                        product_codes.push(code);
                    }
                    if product_codes.is_empty()
                        && financing.execution_variant() != ExecutionVariant::Taakgericht
                    {
                        return Err(ctx(&format!(
                            "subsegment {} ({}) must list its product_codes: a {} assignment names its product in the standard's 301 message",
                            ss.code,
                            financing.code(),
                            financing.execution_variant().code()
                        )));
                    }
                    if !seen.insert(ss.code.clone()) {
                        return Err(ctx(&format!("subsegment code {} is used twice", ss.code)));
                    }
                    subsegments.push(Subsegment {
                        code: ss.code,
                        name: ss.name,
                        financing,
                        product_categories: ss.product_categories,
                        product_codes,
                    });
                }
                segments.push(Segment {
                    code: s.code,
                    name: s.name,
                    law,
                    municipalities: participating,
                    subsegments,
                    note: s.note,
                });
            }
            lots.push(Lot {
                code: l.code,
                name: l.name,
                segments,
            });
        }
        Ok(Self {
            region: raw.region,
            municipalities,
            lots,
        })
    }

    pub fn achterhoek() -> Result<Self, String> {
        Self::from_toml(ACHTERHOEK)
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.lots.iter().flat_map(|l| l.segments.iter())
    }

    pub fn segment(&self, field: &str, code: &str) -> Result<&Segment, RegistrationError> {
        self.segments().find(|s| s.code == code).ok_or_else(|| {
            RegistrationError::field(field, format!("`{code}` is not a segment of the catalogue"))
        })
    }

    /// The segment and subsegment of a subsegment code.
    pub fn subsegment(
        &self,
        field: &str,
        code: &str,
    ) -> Result<(&Segment, &Subsegment), RegistrationError> {
        self.segments()
            .find_map(|s| {
                s.subsegments
                    .iter()
                    .find(|ss| ss.code == code)
                    .map(|ss| (s, ss))
            })
            .ok_or_else(|| {
                RegistrationError::field(
                    field,
                    format!("`{code}` is not a subsegment of the catalogue"),
                )
            })
    }

    /// A municipality of the region (malformed or unknown codes are refused with the field named).
    pub fn municipality(
        &self,
        field: &str,
        code: &str,
    ) -> Result<&Municipality, RegistrationError> {
        let parsed = GemeenteCode::parse(code).map_err(|e| e.at(field))?;
        self.municipalities
            .iter()
            .find(|m| m.code == parsed)
            .ok_or_else(|| {
                RegistrationError::field(
                    field,
                    format!("`{code}` is not a municipality of this region"),
                )
            })
    }
}

impl Segment {
    /// The requested subsegments of this segment, or all of them when none are named.
    pub fn resolve_subsegments(
        &self,
        field: &str,
        requested: &[String],
    ) -> Result<Vec<String>, RegistrationError> {
        if requested.is_empty() {
            return Ok(self.subsegments.iter().map(|s| s.code.clone()).collect());
        }
        let mut out: Vec<String> = Vec::new();
        for (i, code) in requested.iter().enumerate() {
            if !self.subsegments.iter().any(|s| &s.code == code) {
                return Err(RegistrationError::field(
                    format!("{field}[{i}]"),
                    format!("`{code}` is not a subsegment of segment {}", self.code),
                ));
            }
            if !out.contains(code) {
                out.push(code.clone());
            }
        }
        Ok(out)
    }

    /// The requested municipalities, or all taking part when none are named. A municipality that
    /// does not take part in this segment is refused as a rule of the register.
    pub fn resolve_municipalities(
        &self,
        catalogue: &Catalogue,
        field: &str,
        requested: &[String],
    ) -> Result<Vec<GemeenteCode>, RegistrationError> {
        if requested.is_empty() {
            return Ok(self.municipalities.clone());
        }
        let mut out: Vec<GemeenteCode> = Vec::new();
        for (i, code) in requested.iter().enumerate() {
            let m = catalogue.municipality(&format!("{field}[{i}]"), code)?;
            if !self.municipalities.contains(&m.code) {
                return Err(RegistrationError::rule(
                    "segment.municipality_takes_part",
                    format!("{field}[{i}]"),
                    format!(
                        "{} does not take part in segment {} through the joint contracts",
                        m.name, self.code
                    ),
                ));
            }
            if !out.contains(&m.code) {
                out.push(m.code.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn achterhoek_catalogue_has_the_segments_of_the_brief() {
        let c = Catalogue::achterhoek().unwrap();
        assert_eq!(c.municipalities.len(), 8);
        let codes: Vec<_> = c.segments().map(|s| s.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "IAJ", "GWV", "HCWV", "DYS", "ZHZ", "WIO", "WLOG", "WWON", "HBH"
            ]
        );
        // Oude IJsselstreek only in Gezins- en Woonvormen and Wonen.
        let oij = GemeenteCode::parse("1509").unwrap();
        let with_oij: Vec<_> = c
            .segments()
            .filter(|s| s.municipalities.contains(&oij))
            .map(|s| s.code.as_str())
            .collect();
        assert_eq!(with_oij, ["GWV", "WWON"]);
        let (_, pv) = c.subsegment("x", "WIO-PV").unwrap();
        assert_eq!(pv.financing, Financing::PxQ);
        assert_eq!(
            pv.financing.execution_variant(),
            rz_domain::ExecutionVariant::Inspanningsgericht
        );
        let (seg, dys) = c.subsegment("x", "DYS").unwrap();
        assert_eq!(
            (seg.code.as_str(), dys.financing),
            ("DYS", Financing::PopulationBased)
        );
    }

    #[test]
    fn pxq_and_separate_subsegments_list_their_product_codes() {
        let c = Catalogue::from_toml(ACHTERHOEK).unwrap();
        let (_, pv) = c.subsegment("x", "WIO-PV").unwrap();
        let codes: Vec<&str> = pv.product_codes.iter().map(|p| p.as_str()).collect();
        assert_eq!(codes, ["PV01", "PV02"]);
        let missing = ACHTERHOEK.replace("product_codes = [\"LOG01\", \"LOG02\"]\n", "");
        let err = Catalogue::from_toml(&missing).unwrap_err();
        assert!(
            err.contains("WLOG") && err.contains("product_codes"),
            "{err}"
        );
        let bad = ACHTERHOEK.replace("\"LOG02\"", "\"LOG-2\"");
        let err = Catalogue::from_toml(&bad).unwrap_err();
        assert!(
            err.contains("LOG-2") || err.contains("product_code"),
            "{err}"
        );
        let twice = ACHTERHOEK.replace("\"LOG02\"", "\"LOG01\"");
        let err = Catalogue::from_toml(&twice).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn a_region_file_with_a_wrong_product_category_is_refused() {
        let bad = ACHTERHOEK.replace(
            "product_categories = [\"04\"]",
            "product_categories = [\"99\"]",
        );
        let err = Catalogue::from_toml(&bad).unwrap_err();
        assert!(err.contains("WLOG") && err.contains("99"), "{err}");
    }

    #[test]
    fn municipalities_are_checked_by_format_membership_and_participation() {
        let c = Catalogue::achterhoek().unwrap();
        let iaj = c.segment("segment_code", "IAJ").unwrap();
        assert!(matches!(
            c.municipality("m", "222"),
            Err(RegistrationError::Invalid(_))
        ));
        assert!(matches!(
            c.municipality("m", "0363"),
            Err(RegistrationError::Invalid(_))
        ));
        let err = iaj
            .resolve_municipalities(&c, "municipalities", &["1509".into()])
            .unwrap_err();
        assert!(matches!(
            err,
            RegistrationError::Rule {
                rule: "segment.municipality_takes_part",
                ..
            }
        ));
        assert_eq!(iaj.resolve_municipalities(&c, "m", &[]).unwrap().len(), 7);
        assert!(iaj.resolve_subsegments("s", &["GWV-PZ".into()]).is_err());
    }
}
