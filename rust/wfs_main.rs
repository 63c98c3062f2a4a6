// SPDX-License-Identifier: GPL-2.0

//! `wfs.ko`: the kernel half of the WFS distributed shared memory.
//!
//! One module in three parts:
//! - [`fs`] (`rust/wfs`): the Wrapper File System;
//! - [`upcall`] (`rust/upcall`): the `/dev/wfs` channel to the manager;
//! - [`netmem`] (`rust/netmem`): the page buffer pool shared with the
//!   manager.

#[path = "wfs/mod.rs"]
mod fs;
mod netmem;
mod upcall;

use kernel::{
    c_str,
    fs::{FsTable, Registration},
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
};
use upcall::{channel::Channel, device::WfsDevice};

module! {
    type: Wfs,
    name: "wfs",
    author: "WFS developers",
    description: "WFS: distributed shared memory through mmap",
    license: "GPL",
}

/// Storage of the `wfs` file system type (lockdep wants it static).
static FS_TABLE: FsTable<fs::WfsFs> = FsTable::new();

struct Wfs {
    _fs: Registration<fs::WfsFs>,
    _dev: Pin<KBox<MiscDeviceRegistration<WfsDevice>>>,
}

impl kernel::Module for Wfs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let chan = Arc::pin_init(Channel::new(), GFP_KERNEL)?;
        let dev = KBox::pin_init(
            MiscDeviceRegistration::register(
                MiscDeviceOptions {
                    name: c_str!("wfs"),
                    // Only root talks to the manager's channel: STATUS tells who
                    // the manager is, and REGISTER needs CAP_SYS_ADMIN anyway.
                    mode: 0o600,
                },
                chan.clone(),
                module,
            ),
            GFP_KERNEL,
        )?;
        let fs = Registration::register(&FS_TABLE, module, chan)?;
        pr_info!(
            "loaded: abi {}, /dev/wfs minor {}\n",
            upcall::abi::ABI_VERSION,
            dev.minor()
        );
        Ok(Wfs { _fs: fs, _dev: dev })
    }
}

impl Drop for Wfs {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
