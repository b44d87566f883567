//! `assignment [serve] [--config FILE]` runs the service (see the library);
//! `assignment import-xml --endpoint URL --agb CODE DIR` uploads a provider's messages.

use std::path::PathBuf;

#[derive(clap::Subcommand)]
enum Command {
    /// Uploads every `*.xml` file in DIR (a provider's 305, 307, 315 or 317 messages) and writes
    /// the return message next to each as `<name>.return.xml`
    ImportXml {
        /// The assignment service's gRPC URL
        #[arg(long)]
        endpoint: String,
        /// The provider's AGB code
        #[arg(long)]
        agb: String,
        /// The folder with the messages
        dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    rz_platform::runner::main_with::<assignment::App, Command, _, _>(|command| async move {
        match command {
            Command::ImportXml { endpoint, agb, dir } => {
                assignment::upload::upload_folder(&endpoint, &agb, &dir).await
            }
        }
    })
}
