//! Compiles the `.proto` files in pure Rust (protox), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "regiozorg/types/v1/types.proto",
        "regiozorg/registration/v1/registration.proto",
        "regiozorg/registration/v1/events.proto",
        "regiozorg/access/v1/access.proto",
        "regiozorg/access/v1/events.proto",
        "regiozorg/assignment/v1/assignment.proto",
        "regiozorg/assignment/v1/events.proto",
        "regiozorg/reporting/v1/reporting.proto",
        "regiozorg/notification/v1/notification.proto",
        "regiozorg/audit/v1/audit.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    // The descriptors, for what reads requests by field name (authorisation binds fields).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("regiozorg_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
