//! `osiris`: run declarative data pipelines (Osiris OML) on Apache Arrow.

mod cli;

/// mimalloc keeps freed memory for reuse: each batch's buffers are allocated and freed once per
/// batch, and glibc's malloc returned such large blocks to the kernel every time, paying page
/// faults and zeroing on the next batch.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
