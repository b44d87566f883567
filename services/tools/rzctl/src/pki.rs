//! `rzctl pki init`: a test PKI for a region in a folder (see `rz_pki` for the layout): the
//! region's CA, a client certificate per provider and municipality (with its `urn:regiozorg:` URI
//! SAN), the operator's, a server-and-client certificate per service, and per municipality a
//! consulent's staff token valid a day. For local use and tests only.

use std::path::{Path, PathBuf};

use rz_domain::{AgbCode, GemeenteCode};
use rz_pki::PkiSpec;
use serde::Deserialize;

use crate::seed::Seed;

/// The Achterhoek region file (its municipalities), built in as the seed is.
pub const ACHTERHOEK_REGION: &str = include_str!("../../../registration/regions/achterhoek.toml");

/// `rzctl pki init`.
#[derive(Debug, Clone, clap::Args)]
pub struct Init {
    /// Where to write the PKI (created if missing; existing files are replaced).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The region file whose municipalities get a certificate and a staff token; the built-in
    /// Achterhoek region when left out.
    #[arg(long, value_name = "PATH", conflicts_with = "municipalities")]
    pub region_file: Option<PathBuf>,
    /// The seed file whose providers (organisations and consortia) get a certificate; the
    /// built-in Achterhoek seed when left out.
    #[arg(long, value_name = "PATH", conflicts_with = "providers")]
    pub seed_file: Option<PathBuf>,
    /// These providers' AGB codes instead of the seed's (comma-separated).
    #[arg(long, value_name = "AGB,...", value_delimiter = ',')]
    pub providers: Vec<String>,
    /// These municipalities' CBS codes instead of the region file's (comma-separated).
    #[arg(long, value_name = "CBS,...", value_delimiter = ',')]
    pub municipalities: Vec<String>,
    /// How long the certificates are valid.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub valid_days: u32,
    /// More host names for the services' server certificates (besides localhost, 127.0.0.1 and
    /// the service's name); repeatable.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
}

#[derive(Deserialize)]
struct RegionFile {
    municipalities: Vec<RegionMunicipality>,
}

#[derive(Deserialize)]
struct RegionMunicipality {
    code: String,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The CBS codes of a region file's municipalities.
pub fn region_municipalities(text: &str) -> Result<Vec<String>, String> {
    let region: RegionFile = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(region.municipalities.into_iter().map(|m| m.code).collect())
}

/// The AGB codes of every provider a seed registers: organisations (current and former) and
/// consortia.
pub fn seed_providers(seed: &Seed) -> Vec<String> {
    let mut agb: Vec<String> = seed
        .organisations()
        .map(|(agb, _, _, _)| agb.to_owned())
        .chain(seed.providers.consortia.iter().map(|k| k.agb.clone()))
        .collect();
    agb.sort();
    agb.dedup();
    agb
}

impl Init {
    /// The organisations to issue for, checked (every code is a valid AGB or CBS code: they
    /// become folder names).
    pub fn spec(&self) -> Result<PkiSpec, String> {
        let providers = if self.providers.is_empty() {
            let seed = match &self.seed_file {
                None => Seed::achterhoek().map_err(|e| format!("built-in seed: {e}"))?,
                Some(p) => Seed::parse(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?,
            };
            seed_providers(&seed)
        } else {
            self.providers.clone()
        };
        let municipalities = if self.municipalities.is_empty() {
            match &self.region_file {
                None => region_municipalities(ACHTERHOEK_REGION)
                    .map_err(|e| format!("built-in region: {e}"))?,
                Some(p) => {
                    region_municipalities(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?
                }
            }
        } else {
            self.municipalities.clone()
        };
        for agb in &providers {
            AgbCode::parse(agb).map_err(|e| format!("provider `{agb}`: {e}"))?;
        }
        for cbs in &municipalities {
            GemeenteCode::parse(cbs).map_err(|e| format!("municipality `{cbs}`: {e}"))?;
        }
        let providers: Vec<&str> = providers.iter().map(String::as_str).collect();
        let municipalities: Vec<&str> = municipalities.iter().map(String::as_str).collect();
        let mut spec = PkiSpec::region(&providers, &municipalities);
        spec.valid_days = self.valid_days.max(1);
        spec.extra_hosts = self.hosts.clone();
        Ok(spec)
    }

    /// Writes the PKI and says what it holds.
    pub fn run(&self) -> Result<(), String> {
        let spec = self.spec()?;
        rz_pki::generate(&self.dir, &spec).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        println!(
            "PKI in {}: ca.crt, {} providers (provider-<AGB>/), {} municipalities (municipality-<CBS>/, with staff.jwt valid 24 h), operator/, {} services (service-<name>/); certificates valid {} days; staff tokens verify with token-signing.pub (or jwks.json)",
            self.dir.display(),
            spec.providers.len(),
            spec.municipalities.len(),
            spec.services.len(),
            spec.valid_days
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_achterhoek_has_eight_municipalities_and_every_seeded_provider() {
        let m = region_municipalities(ACHTERHOEK_REGION).unwrap();
        assert_eq!(
            m,
            [
                "0197", "1859", "1876", "0222", "1955", "1586", "1509", "0294"
            ]
        );
        let p = seed_providers(&Seed::achterhoek().unwrap());
        assert_eq!(p.len(), 126);
    }
}
