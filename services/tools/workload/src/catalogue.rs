//! The region's catalogue as the subsegments a decision can grant, and the product a decision
//! grants for one.

use rz_proto::access::v1 as acc;
use rz_proto::registration::v1 as reg;
use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use rz_proto::types::v1 as types;
use tonic::transport::Channel;

/// Segments that run outside the joint contracts (dyslexia care and household help): not part of
/// the regular decision flow.
pub const OUTSIDE_JOINT_CONTRACTS: [&str; 2] = ["DYS", "HBH"];

/// A subsegment of the catalogue, with what a decision for it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    pub code: String,
    /// The segment's code (`IAJ`, `WWON`, ...).
    pub segment: String,
    /// [`types::Law`] as the proto carries it.
    pub law: i32,
    /// [`types::Financing`] as the proto carries it.
    pub financing: i32,
    /// CBS codes of the municipalities that buy the segment through the joint contracts.
    pub municipalities: Vec<String>,
    /// The region's product codes (PxQ and separately contracted subsegments name one).
    pub product_codes: Vec<String>,
}

impl Sub {
    /// Youth care (Jeugdwet); otherwise Wmo.
    pub fn is_youth(&self) -> bool {
        self.law == types::Law::Jeugdwet as i32
    }

    /// Whether a resident of municipality `m` can get it.
    pub fn serves(&self, m: &str) -> bool {
        self.municipalities.iter().any(|x| x == m)
    }
}

/// Every subsegment of the joint contracts, lot by lot and segment by segment in the catalogue's
/// order (without [`OUTSIDE_JOINT_CONTRACTS`]).
pub fn subsegments(catalogue: &reg::Catalogue) -> Vec<Sub> {
    catalogue
        .lots
        .iter()
        .flat_map(|l| &l.segments)
        .filter(|s| !OUTSIDE_JOINT_CONTRACTS.contains(&s.code.as_str()))
        .flat_map(|s| {
            s.subsegments.iter().map(|ss| Sub {
                code: ss.code.clone(),
                segment: s.code.clone(),
                law: s.law,
                financing: ss.financing,
                municipalities: s.municipalities.clone(),
                product_codes: ss.product_codes.clone(),
            })
        })
        .collect()
}

/// Reads the catalogue from registration and returns its [`subsegments`].
pub async fn fetch(
    registration: &mut RegistrationServiceClient<Channel>,
) -> Result<Vec<Sub>, tonic::Status> {
    let catalogue = registration
        .get_catalogue(reg::GetCatalogueRequest {})
        .await?
        .into_inner();
    Ok(subsegments(&catalogue))
}

/// The product a decision grants for `sub` from `start` to `end` (`YYYY-MM-DD`): the result and
/// the region's goal by the kind of care, and the size its financing asks for (PxQ: 3 hours a
/// week; a separate contract: a budget of EUR 2,500).
pub fn product(sub: &Sub, start: &str, end: &str) -> acc::ProductToGrant {
    let mut p = acc::ProductToGrant {
        subsegment_code: sub.code.clone(),
        result: if sub.is_youth() {
            "Veilig en gezond opgroeien, thuis en op school".into()
        } else {
            "Zelfstandig wonen en meedoen in de buurt".into()
        },
        goal: match sub.segment.as_str() {
            "IAJ" | "WLOG" => acc::Goal::FlexibleAmbulant,
            "GWV" | "HCWV" | "WWON" => acc::Goal::MeaningfulLife,
            "WIO" => acc::Goal::Participation,
            _ => acc::Goal::TimelyLastingResult,
        } as i32,
        period: Some(types::Period {
            start: start.into(),
            end: end.into(),
        }),
        product_code: sub.product_codes.first().cloned().unwrap_or_default(),
        ..Default::default()
    };
    if sub.financing == types::Financing::Pxq as i32 {
        p.volume = 3;
        p.unit = "04".into();
        p.frequency = "2".into();
    } else if sub.financing == types::Financing::SeparateContract as i32 {
        p.budget_cents = 250_000;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(code: &str, law: types::Law, subs: &[(&str, types::Financing)]) -> reg::Segment {
        reg::Segment {
            code: code.into(),
            law: law as i32,
            municipalities: vec!["0222".into(), "1859".into()],
            subsegments: subs
                .iter()
                .map(|(c, f)| reg::Subsegment {
                    code: (*c).into(),
                    financing: *f as i32,
                    product_codes: vec![format!("{c}-P")],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn catalogue() -> reg::Catalogue {
        reg::Catalogue {
            lots: vec![
                reg::Lot {
                    segments: vec![
                        segment(
                            "IAJ",
                            types::Law::Jeugdwet,
                            &[
                                ("IAJ01", types::Financing::Pxq),
                                ("IAJ02", types::Financing::Lumpsum),
                            ],
                        ),
                        segment(
                            "DYS",
                            types::Law::Jeugdwet,
                            &[("DYS01", types::Financing::Pxq)],
                        ),
                    ],
                    ..Default::default()
                },
                reg::Lot {
                    segments: vec![
                        segment("HBH", types::Law::Wmo, &[("HBH01", types::Financing::Pxq)]),
                        segment(
                            "WWON",
                            types::Law::Wmo,
                            &[("WWON01", types::Financing::SeparateContract)],
                        ),
                    ],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_catalogue_gives_the_joint_subsegments_in_order() {
        let subs = subsegments(&catalogue());
        let codes: Vec<&str> = subs.iter().map(|s| s.code.as_str()).collect();
        assert_eq!(codes, ["IAJ01", "IAJ02", "WWON01"]);
        assert_eq!(subs[0].segment, "IAJ");
        assert!(subs[0].is_youth() && !subs[2].is_youth());
        assert_eq!(subs[2].product_codes, ["WWON01-P"]);
        assert!(subs[0].serves("1859") && !subs[0].serves("0197"));
    }

    #[test]
    fn a_product_is_sized_by_its_financing() {
        let subs = subsegments(&catalogue());
        let pxq = product(&subs[0], "2022-09-01", "2023-08-31");
        assert_eq!(
            (pxq.volume, pxq.unit.as_str(), pxq.frequency.as_str()),
            (3, "04", "2")
        );
        assert_eq!(pxq.budget_cents, 0);
        assert_eq!(pxq.goal, acc::Goal::FlexibleAmbulant as i32);
        assert_eq!(pxq.product_code, "IAJ01-P");
        assert_eq!(
            pxq.period
                .as_ref()
                .map(|p| (p.start.as_str(), p.end.as_str())),
            Some(("2022-09-01", "2023-08-31"))
        );
        let task = product(&subs[1], "2022-09-01", "2023-08-31");
        assert_eq!((task.volume, task.budget_cents), (0, 0));
        let output = product(&subs[2], "2022-09-01", "2023-08-31");
        assert_eq!((output.volume, output.budget_cents), (0, 250_000));
        assert_eq!(output.goal, acc::Goal::MeaningfulLife as i32);
        assert_eq!(output.result, "Zelfstandig wonen en meedoen in de buurt");
    }
}
