//! `wfs-manager --config PATH [--no-device]`: the WFS per-host manager.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(wfs_manager::manager::run(&args));
}
