//! A resident (inwoner) of this municipality: the only place in the region that holds the BSN and
//! the name. Everything access publishes carries the pseudonymous [`ClientKey`] instead.

use std::fmt;

use chrono::{Months, NaiveDate};
use rz_domain::{Bsn, ClientKey, FieldError, GemeenteCode};

use super::{AccessError, Fields};

/// A Dutch postal code: 4 digits (not starting with 0) and 2 capital letters, no space (`1234AB`).
#[derive(Clone, PartialEq, Eq)]
pub struct PostalCode(String);

impl PostalCode {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let b = s.as_bytes();
        let ok = b.len() == 6
            && (b'1'..=b'9').contains(&b[0])
            && b[1..4].iter().all(u8::is_ascii_digit)
            && b[4..].iter().all(u8::is_ascii_uppercase);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(
                "postal_code",
                "must be 4 digits and 2 capital letters without a space (1234AB)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    pub street: String,
    pub house_number: String,
    pub postal_code: PostalCode,
    pub city: String,
    pub municipality: GemeenteCode,
}

#[derive(Clone, PartialEq, Eq)]
pub struct LegalRepresentative {
    pub name: String,
    /// e.g. `ouder`, `voogd`
    pub relation: String,
}

/// A registered resident. `Debug` shows only the client key and the municipality: no BSN, name,
/// birth date or address ever reaches a log through it.
#[derive(Clone, PartialEq, Eq)]
pub struct Resident {
    pub client_key: ClientKey,
    pub bsn: Bsn,
    pub given_names: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub address: Address,
    pub legal_representative: Option<LegalRepresentative>,
    pub municipality: GemeenteCode,
    /// COD046 Geslacht: 0 onbekend, 1 mannelijk, 2 vrouwelijk.
    pub gender: u8,
}

impl fmt::Debug for Resident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resident")
            .field("client_key", &self.client_key)
            .field("municipality", &self.municipality)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Address(***)")
    }
}

impl fmt::Debug for LegalRepresentative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LegalRepresentative(***)")
    }
}

/// The text of a registration request, as received.
#[derive(Clone, Default)]
pub struct AddressInput {
    pub street: String,
    pub house_number: String,
    pub postal_code: String,
    pub city: String,
    pub municipality: String,
}

#[derive(Clone, Default)]
pub struct ResidentInput {
    pub bsn: String,
    pub given_names: String,
    pub family_name: String,
    pub birth_date: String,
    pub address: Option<AddressInput>,
    /// (name, relation)
    pub legal_representative: Option<(String, String)>,
    /// COD046 code; empty means `0` (onbekend).
    pub gender: String,
}

/// True if someone born on `birth_date` is under 18 on `today`.
pub fn is_minor(birth_date: NaiveDate, today: NaiveDate) -> bool {
    birth_date
        .checked_add_months(Months::new(18 * 12))
        .is_none_or(|adult| today < adult)
}

impl Resident {
    /// Checks a registration for municipality `own` on `today`: first every field (all named at
    /// once), then that the resident lives in `own` (else permission denied), then that a minor
    /// has a legal representative.
    pub fn register(
        input: &ResidentInput,
        own: &GemeenteCode,
        secret: &[u8],
        today: NaiveDate,
    ) -> Result<Self, AccessError> {
        let mut f = Fields::default();
        let bsn = f.check(Bsn::parse(input.bsn.trim()).map_err(|e| e.at("bsn")));
        let given_names = input.given_names.trim().to_owned();
        let gender = match input.gender.trim() {
            "" | "0" => Some(0),
            "1" => Some(1),
            "2" => Some(2),
            _ => {
                f.push(
                    "gender",
                    "must be a code from list COD046: 0 (onbekend), 1 (mannelijk) or 2 (vrouwelijk)",
                );
                None
            }
        };
        let family_name = f.required("family_name", &input.family_name);
        let birth_date = f.check(super::date("birth_date", input.birth_date.trim()));
        if birth_date.is_some_and(|d| d > today) {
            f.push("birth_date", "must not be in the future");
        }
        let address = match &input.address {
            None => {
                f.push("address", "must be given");
                None
            }
            Some(a) => {
                let street = f.required("address.street", &a.street);
                let house_number = f.required("address.house_number", &a.house_number);
                let postal_code = f.check(
                    PostalCode::parse(a.postal_code.trim())
                        .map_err(|e| e.at("address.postal_code")),
                );
                let city = f.required("address.city", &a.city);
                let municipality = f.check(
                    GemeenteCode::parse(a.municipality.trim())
                        .map_err(|e| e.at("address.municipality")),
                );
                match (postal_code, municipality) {
                    (Some(postal_code), Some(municipality)) => Some(Address {
                        street,
                        house_number,
                        postal_code,
                        city,
                        municipality,
                    }),
                    _ => None,
                }
            }
        };
        let legal_representative = match &input.legal_representative {
            Some((name, relation)) if !(name.trim().is_empty() && relation.trim().is_empty()) => {
                let name = f.required("legal_representative.name", name);
                let relation = f.required("legal_representative.relation", relation);
                Some(LegalRepresentative { name, relation })
            }
            _ => None,
        };
        f.finish()?;
        let (Some(bsn), Some(birth_date), Some(address)) = (bsn, birth_date, address) else {
            return Err(AccessError::field("request", "is incomplete"));
        };
        if &address.municipality != own {
            return Err(AccessError::PermissionDenied {
                rule: "resident.lives_in_municipality",
                description: format!(
                    "this is the access service of municipality {own}; a resident of municipality {} registers there",
                    address.municipality
                ),
            });
        }
        if is_minor(birth_date, today) && legal_representative.is_none() {
            return Err(AccessError::rule(
                "resident.minor_needs_representative",
                "legal_representative",
                "a resident under 18 needs a legal representative (name and relation)",
            ));
        }
        Ok(Self {
            client_key: ClientKey::derive(secret, &bsn),
            bsn,
            given_names,
            family_name,
            birth_date,
            address,
            legal_representative,
            municipality: own.clone(),
            gender: gender.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn d(s: &str) -> NaiveDate {
        rz_domain::parse_date("t", s).unwrap()
    }

    fn input(birth: &str, municipality: &str) -> ResidentInput {
        ResidentInput {
            bsn: "111222333".into(),
            given_names: "Anna".into(),
            family_name: "Jansen".into(),
            birth_date: birth.into(),
            address: Some(AddressInput {
                street: "Raadhuisstraat".into(),
                house_number: "1".into(),
                postal_code: "7001EW".into(),
                city: "Doetinchem".into(),
                municipality: municipality.into(),
            }),
            legal_representative: None,
            gender: String::new(),
        }
    }

    fn own() -> GemeenteCode {
        GemeenteCode::parse("0222").unwrap()
    }

    #[test]
    fn an_adult_of_this_municipality_registers() {
        let r = Resident::register(&input("1980-05-01", "0222"), &own(), b"s", d("2026-11-22"))
            .unwrap();
        assert_eq!(r.client_key, ClientKey::derive(b"s", &r.bsn));
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("111222333") && !shown.contains("Jansen"),
            "{shown}"
        );
    }

    #[test]
    fn other_municipality_is_denied_and_minors_need_a_representative() {
        let e = Resident::register(&input("1980-05-01", "0197"), &own(), b"s", d("2026-11-22"))
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("resident.lives_in_municipality"));
        assert!(matches!(e, AccessError::PermissionDenied { .. }));
        let e = Resident::register(&input("2010-05-01", "0222"), &own(), b"s", d("2026-11-22"))
            .unwrap_err();
        assert_eq!(e.rule_id(), Some("resident.minor_needs_representative"));
        let mut i = input("2010-05-01", "0222");
        i.legal_representative = Some(("P. Jansen".into(), "ouder".into()));
        assert!(Resident::register(&i, &own(), b"s", d("2026-11-22")).is_ok());
    }

    #[test]
    fn eighteen_on_the_day() {
        assert!(is_minor(d("2008-11-23"), d("2026-11-22")));
        assert!(!is_minor(d("2008-11-22"), d("2026-11-22")));
        assert!(is_minor(d("2008-02-29"), d("2026-02-27")));
        assert!(!is_minor(d("2008-02-29"), d("2026-02-28")));
    }

    #[test]
    fn fields_are_named() {
        let mut i = input("2030-01-01", "22");
        i.bsn = "123456789".into();
        i.family_name = " ".into();
        if let Some(a) = i.address.as_mut() {
            a.postal_code = "7001 EW".into();
        }
        let AccessError::Invalid(errors) =
            Resident::register(&i, &own(), b"s", d("2026-11-22")).unwrap_err()
        else {
            panic!("invalid expected")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "bsn",
                "family_name",
                "birth_date",
                "address.postal_code",
                "address.municipality"
            ]
        );
    }

    #[test]
    fn postal_codes() {
        for ok in ["7001EW", "1234AB", "9999ZZ"] {
            assert!(PostalCode::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["0123AB", "1234ab", "1234 AB", "123AB", "1234ABC", ""] {
            assert!(PostalCode::parse(bad).is_err(), "{bad}");
        }
    }
}
