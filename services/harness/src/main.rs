fn main() {
    eprintln!("regiozorg-chaos: not built yet");
    std::process::exit(2);
}
