//! `fakecloud <provider> --listen 127.0.0.1:PORT`: see [`fakecloud::cli`].

fn main() -> std::process::ExitCode {
    fakecloud::cli::main()
}
