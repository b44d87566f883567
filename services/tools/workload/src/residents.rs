//! Synthetic residents of the eight Achterhoek municipalities: the same number always gives the
//! same resident (BSN, name, birth date, address), so a run can be repeated and its requests
//! replayed with the same idempotency keys.

use rz_proto::access::v1 as acc;

/// CBS code, postal code area (four digits) and town of the eight municipalities.
pub const MUNICIPALITIES: [(&str, &str, &str); 8] = [
    ("0197", "7121", "Aalten"),
    ("1859", "7271", "Borculo"),
    ("1876", "7221", "Steenderen"),
    ("0222", "7001", "Doetinchem"),
    ("1955", "6941", "Didam"),
    ("1586", "7141", "Groenlo"),
    ("1509", "7081", "Gendringen"),
    ("0294", "7101", "Winterswijk"),
];

const GIVEN: [&str; 12] = [
    "Anna", "Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Finn", "Sara", "Noah", "Lotte",
    "Bram",
];
const FAMILY: [&str; 12] = [
    "Jansen",
    "de Vries",
    "Bosman",
    "Wolters",
    "Te Lintelo",
    "Hendriks",
    "Roelofs",
    "Ten Have",
    "Meijer",
    "Klein Gunnewiek",
    "Ebbers",
    "Nijhof",
];

/// General practices that refer children to youth care.
pub const GP: [&str; 5] = [
    "Huisartsenpraktijk De Linde",
    "Huisartsen Slingeland",
    "Gezondheidscentrum Berkelland",
    "Huisartsenpraktijk Oude IJssel",
    "Huisartsen Winterswijk-Zuid",
];

/// A deterministic valid BSN for number `n` (see [`rz_domain::Bsn::synthetic`]).
pub fn bsn(n: u32) -> String {
    rz_domain::Bsn::synthetic(n).as_str().to_owned()
}

/// Postal code area and town of municipality `m` (Doetinchem's for a code not in
/// [`MUNICIPALITIES`]).
pub fn town(m: &str) -> (&'static str, &'static str) {
    let (_, area, town) = MUNICIPALITIES
        .iter()
        .find(|p| p.0 == m)
        .copied()
        .unwrap_or(MUNICIPALITIES[3]);
    (area, town)
}

/// Resident `n`'s postal code in postal code area `area`: the area and two letters from `n`.
pub fn postal_code(area: &str, n: u32) -> String {
    format!(
        "{area}{}{}",
        char::from(b'A' + (n % 26) as u8),
        char::from(b'A' + (n / 26 % 26) as u8)
    )
}

/// Resident `n`'s birth date: a child (born 2008 to 2015) or an adult (born 1940 to 1999).
pub fn birth_date(n: u32, minor: bool) -> String {
    if minor {
        format!("{}-0{}-1{}", 2008 + n % 8, 1 + n % 9, n % 10)
    } else {
        format!("{}-0{}-2{}", 1940 + n % 60, 1 + n % 9, n % 8)
    }
}

/// The registration of resident `n` living in municipality `m` (a child has a parent as legal
/// representative), under `idempotency_key`.
pub fn resident(
    idempotency_key: String,
    n: u32,
    m: &str,
    minor: bool,
) -> acc::RegisterResidentRequest {
    let (area, city) = town(m);
    acc::RegisterResidentRequest {
        idempotency_key,
        bsn: bsn(n),
        given_names: GIVEN[(n % 12) as usize].into(),
        family_name: FAMILY[(n / 12 % 12) as usize].into(),
        birth_date: birth_date(n, minor),
        address: Some(acc::Address {
            street: "Dorpsstraat".into(),
            house_number: format!("{}", 1 + n % 120),
            postal_code: postal_code(area, n),
            city: city.into(),
            municipality: m.into(),
        }),
        legal_representative: minor.then(|| acc::LegalRepresentative {
            name: "Ouder".into(),
            relation: "ouder".into(),
        }),
        gender: ["0", "1", "2"][(n % 3) as usize].into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsns_pass_the_eleven_test_and_differ() {
        for n in [0u32, 1, 17, 10_000, 300_123, 1_000_000, 7_000_000] {
            let b = bsn(n);
            assert_eq!(b.len(), 9, "{b}");
            let w = [9i64, 8, 7, 6, 5, 4, 3, 2, -1];
            let sum: i64 = b.bytes().zip(w).map(|(c, w)| i64::from(c - b'0') * w).sum();
            assert_eq!(sum % 11, 0, "{b}");
        }
        assert_ne!(bsn(1), bsn(2));
    }

    #[test]
    fn the_same_number_gives_the_same_resident() {
        let a = resident("k-7".into(), 100_007, "1859", false);
        assert_eq!(a, resident("k-7".into(), 100_007, "1859", false));
        assert_ne!(a.bsn, resident("k-8".into(), 100_008, "1859", false).bsn);
        assert_eq!(a.bsn, bsn(100_007));
        assert_eq!(a.given_names, GIVEN[(100_007 % 12) as usize]);
        assert_eq!(a.family_name, FAMILY[(100_007 / 12 % 12) as usize]);
        assert!(a.legal_representative.is_none());
        let address = a.address.unwrap_or_default();
        assert_eq!(
            (address.city.as_str(), address.municipality.as_str()),
            ("Borculo", "1859")
        );
        assert!(address.postal_code.starts_with("7271"));
    }

    #[test]
    fn residents_are_as_they_always_were() {
        // The demo's report shows residents' letters: these values must not drift.
        let r = resident("demo-resident-300001".into(), 300_001, "0222", true);
        assert_eq!(r.birth_date, "2009-05-11");
        assert_eq!(r.gender, "1");
        assert!(r.legal_representative.is_some());
        let address = r.address.unwrap_or_default();
        assert_eq!(address.postal_code, "7001NU");
        assert_eq!(address.house_number, "2");
        assert_eq!(birth_date(100_000, false), "1980-02-20");
    }

    #[test]
    fn postal_codes_and_towns() {
        assert_eq!(postal_code("7121", 0), "7121AA");
        assert_eq!(postal_code("7121", 27), "7121BB");
        assert_eq!(town("0294"), ("7101", "Winterswijk"));
        assert_eq!(town("9999"), ("7001", "Doetinchem"));
    }
}
