//! `wfs-manager --config PATH [--no-device] [--debug-switches]`: the WFS
//! per-host manager.
//!
//! The command line is parsed with `clap` (derive API) from the definition
//! in [`wfs_manager::cli`], which the man page generator (`wfs-gen-docs`
//! in the `wfsctl` crate) reads too, so `--help`, `wfs-manager.8` and the
//! shell completions never disagree with the parser. Exit status: 0 after
//! a clean shutdown (and for `--help`, `--version`), 1 on a failure, 2 on
//! a usage error.

fn main() {
    // A thread that panics leaves the page protocol's state half changed
    // (and, were it the disk-commit thread, writes never reported): the
    // manager does not go on without it. It aborts, and its peers and its
    // kernel treat it as a manager that died (failures.md).
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("wfs-manager: a thread panicked; aborting");
        std::process::abort();
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(wfs_manager::manager::run(&args));
}
