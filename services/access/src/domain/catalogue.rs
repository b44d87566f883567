//! The region's catalogue as access needs it: for every subsegment its segment, law, financing (and
//! so its execution variant), product categories and the municipalities that take part in its
//! segment. Fetched once from registration at start-up and kept in memory.

use std::collections::HashMap;

use rz_domain::{ExecutionVariant, Financing, GemeenteCode, Law, ProductCode};
use rz_proto::registration::v1 as pb;
use rz_proto::types::v1 as types;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsegment {
    pub code: String,
    pub segment_code: String,
    pub law: Law,
    pub financing: Financing,
    /// JZ020 (youth) or WMO020 (Wmo) product categories; the first is the one a grant gets.
    pub product_categories: Vec<String>,
    /// The municipalities that buy the subsegment's segment through the joint contracts.
    pub municipalities: Vec<GemeenteCode>,
    /// The region's product codes a grant of this subsegment may name (see
    /// [`ExecutionVariant::product_code`]).
    pub product_codes: Vec<ProductCode>,
}

impl Subsegment {
    pub fn execution_variant(&self) -> ExecutionVariant {
        self.financing.execution_variant()
    }

    /// The product category a grant of this subsegment gets.
    pub fn product_category(&self) -> &str {
        self.product_categories
            .first()
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn takes_part(&self, municipality: &GemeenteCode) -> bool {
        self.municipalities.contains(municipality)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    pub region: String,
    pub municipalities: Vec<GemeenteCode>,
    subsegments: HashMap<String, Subsegment>,
}

pub fn law_from_pb(l: types::Law) -> Option<Law> {
    match l {
        types::Law::Jeugdwet => Some(Law::Jeugdwet),
        types::Law::Wmo => Some(Law::Wmo),
        types::Law::Unspecified => None,
    }
}

pub fn financing_from_pb(f: types::Financing) -> Option<Financing> {
    match f {
        types::Financing::Lumpsum => Some(Financing::Lumpsum),
        types::Financing::PopulationBased => Some(Financing::PopulationBased),
        types::Financing::Pxq => Some(Financing::PxQ),
        types::Financing::SeparateContract => Some(Financing::SeparateContract),
        types::Financing::Unspecified => None,
    }
}

impl Catalogue {
    /// Reads registration's catalogue; refuses one access cannot work with.
    pub fn from_pb(c: &pb::Catalogue) -> Result<Self, String> {
        let mut municipalities = Vec::new();
        for m in &c.municipalities {
            municipalities
                .push(GemeenteCode::parse(&m.code).map_err(|e| format!("municipality: {e}"))?);
        }
        let mut subsegments = HashMap::new();
        for segment in c.lots.iter().flat_map(|l| &l.segments) {
            let law = law_from_pb(segment.law())
                .ok_or_else(|| format!("segment {} has no law", segment.code))?;
            let takes_part = segment
                .municipalities
                .iter()
                .map(|m| {
                    GemeenteCode::parse(m).map_err(|e| format!("segment {}: {e}", segment.code))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for ss in &segment.subsegments {
                let financing = financing_from_pb(ss.financing())
                    .ok_or_else(|| format!("subsegment {} has no financing", ss.code))?;
                if ss.product_categories.is_empty() {
                    return Err(format!("subsegment {} has no product category", ss.code));
                }
                let product_codes = ss
                    .product_codes
                    .iter()
                    .map(|p| {
                        ProductCode::parse(p).map_err(|e| format!("subsegment {}: {e}", ss.code))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let sub = Subsegment {
                    product_codes,
                    code: ss.code.clone(),
                    segment_code: segment.code.clone(),
                    law,
                    financing,
                    product_categories: ss.product_categories.clone(),
                    municipalities: takes_part.clone(),
                };
                if subsegments.insert(ss.code.clone(), sub).is_some() {
                    return Err(format!("subsegment {} appears twice", ss.code));
                }
            }
        }
        Ok(Self {
            region: c.region.clone(),
            municipalities,
            subsegments,
        })
    }

    pub fn subsegment(&self, code: &str) -> Option<&Subsegment> {
        self.subsegments.get(code)
    }

    pub fn has_municipality(&self, m: &GemeenteCode) -> bool {
        self.municipalities.contains(m)
    }

    pub fn subsegment_count(&self) -> usize {
        self.subsegments.len()
    }
}
