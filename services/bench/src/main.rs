fn main() {
    eprintln!("regiozorg-bench: not built yet");
    std::process::exit(2);
}
