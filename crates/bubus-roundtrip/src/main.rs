//! `abxbus-rust-roundtrip <events|bus> <in.json> <out.json>`. See the `bubus_roundtrip` crate
//! docs.

fn main() -> std::process::ExitCode {
    bubus_roundtrip::run(std::env::args_os().skip(1))
}
