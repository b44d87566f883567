//! `rzctl nats config`: the region's nats-server authorisation (see `rz_eventing::auth`): one
//! account for the namespace, an nkey user for the operator, each service and each provider, and
//! each user's seed beside its certificate (`<pki>/provider-<AGB>/nats.nk`,
//! `<pki>/service-<name>/nats.nk`, `<pki>/operator/nats.nk`). A seed already there is kept, so
//! regenerating after adding or ending a provider changes no one else's credentials; reload the
//! server (`nats-server --signal reload=<pid>`) to apply it.
//!
//! `rzctl nats provision`: as the operator, makes each provider's durable consumer and deletes
//! the consumers of providers no longer listed.

use std::path::{Path, PathBuf};

use rz_domain::AgbCode;
use rz_eventing::Namespace;
use rz_eventing::auth::{self, NatsAuth, RegionUsers, User};

use crate::seed::Seed;

/// The providers to give credentials (`--seed-file` or `--providers`).
#[derive(Debug, Clone, clap::Args)]
pub struct Providers {
    /// The seed file whose providers get a user; the built-in Achterhoek seed when left out.
    #[arg(long, value_name = "PATH", conflicts_with = "providers")]
    pub seed_file: Option<PathBuf>,
    /// These providers' AGB codes instead of the seed's (comma-separated).
    #[arg(long, value_name = "AGB,...", value_delimiter = ',')]
    pub providers: Vec<String>,
}

impl Providers {
    fn list(&self) -> Result<Vec<String>, String> {
        let mut providers = if self.providers.is_empty() {
            let seed = match &self.seed_file {
                None => Seed::achterhoek().map_err(|e| format!("built-in seed: {e}"))?,
                Some(p) => {
                    let text =
                        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                    Seed::parse(&text).map_err(|e| format!("{}: {e}", p.display()))?
                }
            };
            crate::pki::seed_providers(&seed)
        } else {
            self.providers.clone()
        };
        for agb in &providers {
            AgbCode::parse(agb).map_err(|e| format!("provider `{agb}`: {e}"))?;
        }
        providers.sort();
        providers.dedup();
        Ok(providers)
    }
}

/// `rzctl nats config`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// The PKI folder the seeds are written to (beside each certificate; created if missing).
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The nats-server config file to write (an `accounts` block; no secrets in it).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The namespace (first subject token) whose account this is; RZ_NAMESPACE, else `rz`.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub providers: Providers,
}

/// The seed file of `folder` in the PKI.
pub fn seed_path(pki: &Path, folder: &str) -> PathBuf {
    pki.join(folder).join("nats.nk")
}

/// The user whose seed is at `path`: the existing seed, or a new one written there (mode 0600).
fn user_at(path: &Path) -> Result<User, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let pair = nkeys::KeyPair::from_seed(text.trim())
            .map_err(|e| format!("{}: not an nkey seed: {e}", path.display()))?;
        return Ok(User {
            public_key: pair.public_key(),
        });
    }
    let pair = nkeys::KeyPair::new_user();
    let seed = pair
        .seed()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_secret(path, &format!("{seed}\n"))?;
    Ok(User {
        public_key: pair.public_key(),
    })
}

fn write_secret(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Config {
    /// Writes the seeds that are missing and the config, and says what it holds.
    pub fn run(&self) -> Result<(), String> {
        let ns = match &self.namespace {
            Some(ns) => Namespace::new(ns)?,
            None => Namespace::new(&std::env::var("RZ_NAMESPACE").unwrap_or_else(|_| "rz".into()))?,
        };
        let providers = self.providers.list()?;
        let operator = user_at(&seed_path(&self.pki, "operator"))?;
        let mut services = Vec::new();
        for service in auth::SERVICES {
            let folder = format!("service-{}", service.name);
            services.push((
                service.name.to_owned(),
                user_at(&seed_path(&self.pki, &folder))?,
            ));
        }
        let mut users = Vec::new();
        for agb in &providers {
            let folder = format!("provider-{agb}");
            users.push((agb.clone(), user_at(&seed_path(&self.pki, &folder))?));
        }
        let config = auth::render_config(
            &ns,
            &RegionUsers {
                operator,
                services,
                providers: users,
            },
        );
        if let Some(dir) = self.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&self.out, config).map_err(|e| format!("{}: {e}", self.out.display()))?;
        println!(
            "NATS account {} in {}: the operator, {} services and {} providers (seeds in {}/<folder>/nats.nk); reload the server to apply: nats-server --signal reload=<pid>",
            ns.as_str().to_ascii_uppercase(),
            self.out.display(),
            auth::SERVICES.len(),
            providers.len(),
            self.pki.display()
        );
        Ok(())
    }
}

/// `rzctl nats provision`.
#[derive(Debug, Clone, clap::Args)]
pub struct Provision {
    /// The PKI folder with the operator's seed (`operator/nats.nk`).
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    #[command(flatten)]
    pub providers: Providers,
}

impl Provision {
    /// Makes each provider's consumer and deletes those of providers no longer listed.
    pub async fn run(&self, url: &str, ns: &Namespace) -> Result<(), String> {
        use tokio_stream::StreamExt;

        let providers = self.providers.list()?;
        let creds = NatsAuth::nkey(
            seed_path(&self.pki, "operator"),
            auth::inbox_prefix(ns, "operator"),
        );
        let client = auth::connect_options("rzctl", &creds)
            .await
            .map_err(|e| e.to_string())?
            .connect(url)
            .await
            .map_err(|e| format!("nats {url}: {e}"))?;
        let js = rz_eventing::nats::jetstream::new(client);
        for agb in &providers {
            auth::ensure_provider_consumer(&js, ns, agb)
                .await
                .map_err(|e| format!("provider {agb}: {e}"))?;
        }
        let stream = js
            .get_stream(auth::provider_stream(ns))
            .await
            .map_err(|e| e.to_string())?;
        let mut names = stream.consumer_names();
        let mut ended = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(|e| e.to_string())?;
            if let Some(agb) = name.strip_prefix("provider-")
                && !providers.iter().any(|p| p == agb)
            {
                ended.push(agb.to_owned());
            }
        }
        for agb in &ended {
            auth::remove_provider_consumer(&js, ns, agb)
                .await
                .map_err(|e| format!("provider {agb}: {e}"))?;
        }
        println!(
            "{} provider consumers on {} ({} removed)",
            providers.len(),
            auth::provider_stream(ns),
            ended.len()
        );
        Ok(())
    }
}
