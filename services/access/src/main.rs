//! `access [serve] [--config FILE]`: access (toegang) for one municipality (see the library).

fn main() -> std::process::ExitCode {
    rz_platform::runner::main::<access::App>()
}
