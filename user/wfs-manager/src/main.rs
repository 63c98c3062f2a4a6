//! `wfs-manager --config PATH [--no-device] [--debug-switches]`: the WFS
//! per-host manager.

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
