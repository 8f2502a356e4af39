//! The `bubus` command. See the `bubus_cli` crate docs, or `bubus --help`.

fn main() -> std::process::ExitCode {
    bubus_cli::run()
}
