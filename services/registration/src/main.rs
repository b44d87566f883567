//! `registration serve [--config FILE]` runs the service; `registration seed --endpoint URL` loads
//! the Achterhoek seed through the API; `registration landscape --endpoint URL` prints the region's
//! contract landscape.

use std::path::PathBuf;
use std::process::ExitCode;

use registration::{App, Config, seed};
use rz_platform::Shutdown;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let command = args.first().map(String::as_str).unwrap_or("serve");
    let result = match command {
        "serve" => serve(flag("--config").map(PathBuf::from)).await,
        "seed" | "landscape" => {
            let endpoint = flag("--endpoint").unwrap_or_else(|| "http://127.0.0.1:50051".into());
            if command == "seed" {
                seed::load(&endpoint).await
            } else {
                seed::print_landscape(&endpoint).await
            }
        }
        other => Err(format!(
            "unknown command `{other}`; use serve, seed or landscape"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registration: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_file: Option<PathBuf>) -> Result<(), String> {
    let config: Config =
        rz_platform::config::load(config_file.as_deref()).map_err(|e| e.to_string())?;
    let _telemetry =
        rz_telemetry::init("registration", &config.telemetry).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    app.run(shutdown).await.map_err(|e| e.to_string())
}
