//! `registration [serve] [--config FILE]`: the regional contract register (see the library).
//! Loading the Achterhoek seed and printing the landscape are operator commands: `rzctl seed`,
//! `rzctl landscape`.

fn main() -> std::process::ExitCode {
    rz_platform::runner::main::<registration::App>()
}
