//! `notification serve [--config FILE]` runs the service.

use std::path::PathBuf;
use std::process::ExitCode;

use notification::{App, Config};
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
        other => Err(format!("unknown command `{other}`; use serve")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notification: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_file: Option<PathBuf>) -> Result<(), String> {
    let config: Config =
        rz_platform::config::load(config_file.as_deref()).map_err(|e| e.to_string())?;
    let _telemetry =
        rz_telemetry::init("notification", &config.telemetry).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    app.run(shutdown).await.map_err(|e| e.to_string())
}
