//! `assignment import-xml`: uploads a folder of a provider's messages (305, 307, 315, 317) with
//! `UploadProviderMessage`, as the provider's system would, writes each return message next to its
//! message as `<name>.return.xml` and prints a summary. A client of the service, not part of it.
//! A file over the standard's size limit ([`MAX_MESSAGE_BYTES`]) is not sent: it is named with its
//! size and the limit, and counted as failed.
//!
//! It calls as the provider, with mutual TLS: the provider's certificate (its
//! `urn:regiozorg:provider:<AGB>` SAN is who is calling) and the region's CA, given as a test PKI
//! folder (`--pki DIR`, optionally `--as provider-<AGB>`) or as files (`--ca`, `--cert`, `--key`).

use std::path::{Path, PathBuf};

use rz_istandaarden::MAX_MESSAGE_BYTES;
use rz_platform::tls::{TlsConfig, TlsError};
use rz_proto::assignment::v1 as pb;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;

/// Where the provider's certificate comes from, as the command line gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFlags {
    /// `--pki DIR`: a PKI folder (`ca.crt` and a folder per organisation).
    pub pki: Option<PathBuf>,
    /// `--as FOLDER`: the organisation's folder in it; `provider-<AGB>` when not given.
    pub as_folder: Option<String>,
    /// `--ca FILE`, `--cert FILE`, `--key FILE`: the PEM files themselves.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl CertFlags {
    /// The TLS configuration to call with as provider `agb`.
    pub fn tls(&self, agb: &str) -> Result<TlsConfig, String> {
        let files = [&self.ca, &self.cert, &self.key];
        match &self.pki {
            Some(_) if files.iter().any(|f| f.is_some()) => {
                Err("give either --pki (with --as) or --ca, --cert and --key, not both".into())
            }
            Some(pki) => {
                let folder = self
                    .as_folder
                    .clone()
                    .unwrap_or_else(|| format!("provider-{agb}"));
                Ok(TlsConfig::from_pki(pki, &folder))
            }
            None if self.as_folder.is_some() => Err("--as needs --pki DIR".into()),
            None => match (&self.ca, &self.cert, &self.key) {
                (Some(ca), Some(cert), Some(key)) => Ok(TlsConfig {
                    ca: Some(ca.clone()),
                    cert: Some(cert.clone()),
                    key: Some(key.clone()),
                }),
                _ => Err(
                    "the provider's certificate is required: --pki DIR [--as provider-<AGB>], \
                     or --ca FILE --cert FILE --key FILE"
                        .into(),
                ),
            },
        }
    }
}

/// Uploads every `*.xml` file in `dir` (not the `*.return.xml` ones) in name order for provider
/// `agb`, calling with `tls` (the provider's certificate); fails when a file could not be uploaded
/// at all.
pub async fn upload_folder(
    tls: &TlsConfig,
    endpoint: &str,
    agb: &str,
    dir: &Path,
) -> Result<(), String> {
    let endpoint = endpoint.to_owned();
    let agb = agb.to_owned();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == "xml")
                && !p.to_string_lossy().ends_with(".return.xml")
        })
        .collect();
    files.sort();
    let channel = tls
        .endpoint(&endpoint)
        .map_err(|e| match e {
            TlsError::Endpoint(..) => format!("--endpoint: {e}"),
            other => other.to_string(),
        })?
        .connect()
        .await
        .map_err(|e| format!("connect {endpoint}: {e}"))?;
    let mut client = AssignmentServiceClient::new(channel)
        .max_encoding_message_size(crate::xml::MAX_GRPC_MESSAGE_BYTES)
        .max_decoding_message_size(crate::xml::MAX_GRPC_MESSAGE_BYTES);
    let (mut accepted, mut rejected, mut failed) = (0usize, 0usize, 0usize);
    // A progress bar over the files (indicatif draws it only on a terminal); each file's lines
    // are printed above it, and as they are when there is no terminal.
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} files {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let say = |line: String| bar.suspend(|| println!("{line}"));
    let warn = |line: String| bar.suspend(|| eprintln!("{line}"));
    for path in &files {
        bar.inc(1);
        let name = path.display();
        // The standard's limit on one message, checked here: a larger file is never sent (the
        // transport would refuse it with an error that does not say why).
        if let Ok(meta) = std::fs::metadata(path)
            && meta.len() > MAX_MESSAGE_BYTES as u64
        {
            warn(format!("{name}: {}", too_large(meta.len())));
            failed += 1;
            continue;
        }
        let xml = match std::fs::read(path) {
            Ok(x) => x,
            Err(e) => {
                warn(format!("{name}: cannot read: {e}"));
                failed += 1;
                continue;
            }
        };
        match client
            .upload_provider_message(pb::UploadProviderMessageRequest {
                agb_code: agb.clone(),
                xml,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                if !r.return_message_xml.is_empty() {
                    let out = path.with_extension("return.xml");
                    if let Err(e) = std::fs::write(&out, &r.return_message_xml) {
                        warn(format!("{}: cannot write: {e}", out.display()));
                    }
                }
                if r.accepted {
                    accepted += 1;
                    say(format!("{name}: {} accepted", r.kind));
                } else {
                    rejected += 1;
                    for e in &r.errors {
                        say(format!(
                            "{name}: {} {} at {}: {}",
                            r.kind, e.return_code, e.path, e.rule
                        ));
                    }
                }
            }
            Err(s) => {
                failed += 1;
                warn(format!("{name}: {}", status_text(&s)));
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "{} files: {accepted} accepted, {rejected} with rejected records, {failed} failed",
        files.len()
    );
    if failed > 0 {
        return Err(format!("{failed} files could not be uploaded"));
    }
    Ok(())
}

/// What is said about a file over the standard's size limit.
fn too_large(len: u64) -> String {
    format!(
        "{len} bytes is over the standard's limit of {MAX_MESSAGE_BYTES} bytes (25 MiB) for one \
         message; not uploaded (split the records over several messages)"
    )
}

/// A failed call as the user reads it: the transport's errors said plainly.
fn status_text(s: &tonic::Status) -> String {
    let message = s.message();
    match s.code() {
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => format!(
            "{}: {message} (the message is too large to send; the standard's limit is \
             {MAX_MESSAGE_BYTES} bytes)",
            s.code()
        ),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            if message.contains("h2 protocol error") || message.contains("transport error") =>
        {
            format!(
                "{}: the connection to the service failed while sending ({message}); check \
                 --endpoint and that the service is up",
                s.code()
            )
        }
        code => format!("{code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_from_a_pki_folder_or_files() {
        let pki = CertFlags {
            pki: Some("var/demo/pki".into()),
            ..CertFlags::default()
        };
        assert_eq!(
            pki.tls("03000001").unwrap(),
            TlsConfig::from_pki(Path::new("var/demo/pki"), "provider-03000001")
        );
        let named = CertFlags {
            as_folder: Some("provider-03000002".into()),
            ..pki.clone()
        };
        assert_eq!(
            named.tls("03000001").unwrap().cert,
            Some(PathBuf::from("var/demo/pki/provider-03000002/tls.crt"))
        );
        let files = CertFlags {
            ca: Some("ca.pem".into()),
            cert: Some("p.crt".into()),
            key: Some("p.key".into()),
            ..CertFlags::default()
        };
        assert_eq!(
            files.tls("03000001").unwrap(),
            TlsConfig {
                ca: Some("ca.pem".into()),
                cert: Some("p.crt".into()),
                key: Some("p.key".into()),
            }
        );
    }

    #[test]
    fn transport_errors_and_sizes_are_said_plainly() {
        let h2 = status_text(&tonic::Status::unknown(
            "h2 protocol error: error reading a body",
        ));
        assert!(
            h2.contains("the connection to the service failed while sending"),
            "{h2}"
        );
        let big = status_text(&tonic::Status::out_of_range("message too large"));
        assert!(
            big.contains("the standard's limit is 26214400 bytes"),
            "{big}"
        );
        assert_eq!(
            status_text(&tonic::Status::permission_denied("no")),
            "The caller does not have permission to execute the specified operation: no"
        );
        assert!(too_large(26_214_401).starts_with("26214401 bytes is over the standard's limit"));
    }

    #[test]
    fn without_a_certificate_or_with_both_kinds_it_says_what_to_give() {
        let none = CertFlags::default().tls("03000001").unwrap_err();
        assert!(none.contains("--pki") && none.contains("--cert"), "{none}");
        let partial = CertFlags {
            ca: Some("ca.pem".into()),
            ..CertFlags::default()
        };
        assert!(partial.tls("03000001").is_err());
        let both = CertFlags {
            pki: Some("pki".into()),
            key: Some("p.key".into()),
            ..CertFlags::default()
        };
        assert!(both.tls("03000001").unwrap_err().contains("not both"));
        let as_only = CertFlags {
            as_folder: Some("provider-03000001".into()),
            ..CertFlags::default()
        };
        assert!(as_only.tls("03000001").unwrap_err().contains("--pki"));
    }
}
