//! `assignment [serve] [--config FILE]` runs the service (see the library);
//! `assignment import-xml --endpoint URL --agb CODE (--pki DIR [--as FOLDER] | --ca FILE --cert
//! FILE --key FILE) DIR` uploads a provider's messages as that provider (mutual TLS).

use std::path::PathBuf;

#[derive(clap::Subcommand)]
enum Command {
    /// Uploads every `*.xml` file in DIR (a provider's 305, 307, 315 or 317 messages) as the
    /// provider, with its certificate (mutual TLS), and writes the return message next to each as
    /// `<name>.return.xml`
    ImportXml {
        /// The assignment service's gRPC URL (dialled with TLS; `http://` is taken as `https://`)
        #[arg(long)]
        endpoint: String,
        /// The provider's AGB code (the certificate's provider)
        #[arg(long)]
        agb: String,
        /// A PKI folder (`ca.crt` and a folder per organisation, as `var/demo/pki/`)
        #[arg(long, value_name = "DIR", conflicts_with_all = ["ca", "cert", "key"])]
        pki: Option<PathBuf>,
        /// The provider's folder in the PKI folder [default: provider-<AGB>]
        #[arg(long = "as", value_name = "FOLDER", requires = "pki")]
        as_folder: Option<String>,
        /// The region's CA certificate (PEM), instead of --pki
        #[arg(long, value_name = "FILE", requires_all = ["cert", "key"])]
        ca: Option<PathBuf>,
        /// The provider's certificate (PEM), instead of --pki
        #[arg(long, value_name = "FILE", requires_all = ["ca", "key"])]
        cert: Option<PathBuf>,
        /// The provider's private key (PEM), instead of --pki
        #[arg(long, value_name = "FILE", requires_all = ["ca", "cert"])]
        key: Option<PathBuf>,
        /// The folder with the messages
        dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    rz_platform::runner::main_with::<assignment::App, Command, _, _>(|command| async move {
        match command {
            Command::ImportXml {
                endpoint,
                agb,
                pki,
                as_folder,
                ca,
                cert,
                key,
                dir,
            } => {
                let tls = assignment::upload::CertFlags {
                    pki,
                    as_folder,
                    ca,
                    cert,
                    key,
                }
                .tls(&agb)?;
                assignment::upload::upload_folder(&tls, &endpoint, &agb, &dir).await
            }
        }
    })
}
