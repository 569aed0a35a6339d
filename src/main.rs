//! `osiris`: run declarative data pipelines (Osiris OML) on Apache Arrow.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
