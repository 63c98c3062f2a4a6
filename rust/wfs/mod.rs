// SPDX-License-Identifier: GPL-2.0

//! The Wrapper File System: `mount -t wfs none /wfs`.
//!
//! A flat namespace whose files are served by the manager. For now the root
//! is an empty directory; lookup, getattr, readdir and the page cache paths
//! (Chunk's strategy and putpages) come with the data path.

use crate::upcall::channel::Channel;
use kernel::{
    c_str,
    fs::{FileSystem, SuperBlock},
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// `s_magic` of WFS super blocks ("WFS!").
pub(crate) const WFS_MAGIC: usize = 0x5746_5321;

/// The `wfs` file system type.
pub(crate) struct WfsFs;

impl FileSystem for WfsFs {
    const NAME: &'static CStr = c_str!("wfs");
    const MAGIC: usize = WFS_MAGIC;
    type Context = Arc<Channel>;
    type Data = Arc<Channel>;

    fn fill_super(ctx: ArcBorrow<'_, Channel>, _sb: &SuperBlock<Self>) -> Result<Arc<Channel>> {
        ctx.state.lock().mounts += 1;
        Ok(ctx.into())
    }

    fn kill_super(chan: Arc<Channel>) {
        let mut st = chan.state.lock();
        st.mounts = st.mounts.saturating_sub(1);
    }
}
