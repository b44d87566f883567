//! The demo's residents: deterministic BSNs, Dutch names and addresses in the eight
//! municipalities of the Achterhoek.

use rz_proto::access::v1 as acc;
use rz_proto::access::v1::access_service_client::AccessServiceClient;
use tonic::transport::Channel;

use crate::{Result, status_msg};

/// CBS code, postal code area and town of the eight municipalities.
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

/// Registers resident `n` in the municipality's access (idempotent); returns the BSN.
pub async fn register(
    access: &mut AccessServiceClient<Channel>,
    m: &str,
    n: u32,
    minor: bool,
) -> Result<String> {
    let b = bsn(n);
    let (_, pc, city) = MUNICIPALITIES
        .iter()
        .find(|p| p.0 == m)
        .copied()
        .unwrap_or(MUNICIPALITIES[3]);
    let birth = if minor {
        format!("{}-0{}-1{}", 2008 + n % 8, 1 + n % 9, n % 10)
    } else {
        format!("{}-0{}-2{}", 1940 + n % 60, 1 + n % 9, n % 8)
    };
    access
        .register_resident(acc::RegisterResidentRequest {
            idempotency_key: format!("demo-resident-{n}"),
            bsn: b.clone(),
            given_names: GIVEN[(n % 12) as usize].into(),
            family_name: FAMILY[(n / 12 % 12) as usize].into(),
            birth_date: birth,
            address: Some(acc::Address {
                street: "Dorpsstraat".into(),
                house_number: format!("{}", 1 + n % 120),
                postal_code: format!(
                    "{pc}{}{}",
                    (b'A' + (n % 26) as u8) as char,
                    (b'A' + (n / 26 % 26) as u8) as char
                ),
                city: city.into(),
                municipality: m.into(),
            }),
            legal_representative: minor.then(|| acc::LegalRepresentative {
                name: "Ouder".into(),
                relation: "ouder".into(),
            }),
            gender: ["0", "1", "2"][(n % 3) as usize].into(),
        })
        .await
        .map_err(status_msg("RegisterResident"))?;
    Ok(b)
}
