//! `assignment import-xml`: uploads a folder of a provider's messages (305, 307, 315, 317) with
//! `UploadProviderMessage`, as the provider's system would, writes each return message next to its
//! message as `<name>.return.xml` and prints a summary. A client of the service, not part of it.

use std::path::{Path, PathBuf};

use rz_proto::assignment::v1 as pb;
use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;

/// Uploads every `*.xml` file in `dir` (not the `*.return.xml` ones) in name order for provider
/// `agb`; fails when a file could not be uploaded at all.
pub async fn upload_folder(endpoint: &str, agb: &str, dir: &Path) -> Result<(), String> {
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
    let mut client = AssignmentServiceClient::connect(endpoint.clone())
        .await
        .map_err(|e| format!("connect {endpoint}: {e}"))?
        .max_encoding_message_size(crate::xml::MAX_GRPC_MESSAGE_BYTES)
        .max_decoding_message_size(crate::xml::MAX_GRPC_MESSAGE_BYTES);
    let (mut accepted, mut rejected, mut failed) = (0usize, 0usize, 0usize);
    for path in &files {
        let name = path.display();
        let xml = match std::fs::read(path) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
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
                        eprintln!("{}: cannot write: {e}", out.display());
                    }
                }
                if r.accepted {
                    accepted += 1;
                    println!("{name}: {} accepted", r.kind);
                } else {
                    rejected += 1;
                    for e in &r.errors {
                        println!(
                            "{name}: {} {} at {}: {}",
                            r.kind, e.return_code, e.path, e.rule
                        );
                    }
                }
            }
            Err(s) => {
                failed += 1;
                eprintln!("{name}: {}: {}", s.code(), s.message());
            }
        }
    }
    println!(
        "{} files: {accepted} accepted, {rejected} with rejected records, {failed} failed",
        files.len()
    );
    if failed > 0 {
        return Err(format!("{failed} files could not be uploaded"));
    }
    Ok(())
}
