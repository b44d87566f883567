//! `reporting [serve] [--config FILE]`: see the library.

fn main() -> std::process::ExitCode {
    rz_platform::runner::main::<reporting::App>()
}
