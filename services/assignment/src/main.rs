//! `assignment serve [--config FILE]` runs the service.
//!
//! `assignment import-xml --endpoint URL --agb CODE DIR` uploads every `*.xml` file in `DIR` (a
//! provider's 305, 307, 315 or 317 messages) with `UploadProviderMessage`, writes the return
//! message next to each as `<name>.return.xml` and prints a summary.

use std::path::PathBuf;
use std::process::ExitCode;

use assignment::{App, Config};
use rz_platform::Shutdown;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config_file = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let result = match args.first().map(String::as_str).unwrap_or("serve") {
        "serve" => serve(config_file).await,
        "import-xml" => import_xml(&args[1..]).await,
        other => Err(format!(
            "unknown command `{other}`; use serve or import-xml"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("assignment: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_file: Option<PathBuf>) -> Result<(), String> {
    let config: Config =
        rz_platform::config::load(config_file.as_deref()).map_err(|e| e.to_string())?;
    let _telemetry =
        rz_telemetry::init("assignment", &config.telemetry).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    app.run(shutdown).await.map_err(|e| e.to_string())
}

async fn import_xml(args: &[String]) -> Result<(), String> {
    use rz_proto::assignment::v1 as pb;
    use rz_proto::assignment::v1::assignment_service_client::AssignmentServiceClient;

    let usage = "usage: assignment import-xml --endpoint URL --agb CODE DIR";
    let (mut endpoint, mut agb, mut dir) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--endpoint" => endpoint = it.next().cloned(),
            "--agb" => agb = it.next().cloned(),
            other if !other.starts_with("--") && dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unexpected argument `{other}`; {usage}")),
        }
    }
    let (Some(endpoint), Some(agb), Some(dir)) = (endpoint, agb, dir) else {
        return Err(usage.to_owned());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
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
        .max_encoding_message_size(assignment::xml::MAX_GRPC_MESSAGE_BYTES)
        .max_decoding_message_size(assignment::xml::MAX_GRPC_MESSAGE_BYTES);
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
