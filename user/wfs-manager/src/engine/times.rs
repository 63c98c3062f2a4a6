//! File times set by `utimensat` (SETTIMES: `touch -d`, `tar -x`, `cp
//! -p`), kept by the file's owner (Documentation/fs-plan.md, step 2).
//!
//! The kernel asks before it sets the time in its inode: the owner sets it
//! on its export file (`futimens`), whose change time becomes now, and
//! answers; every other host's kernel takes the owner's modification time
//! as it is at its next `stat` past its cached times' age, since the
//! change time moved (kernel patch 0034). The asker's cache hears the new
//! times before its answer, as after a SETSIZE. An owner that is not
//! connected fails the call with `EIO` (it could not keep the time); one
//! that goes away before it answers, too (though it may still set the
//! time when it hears the request again, the session sending it anew
//! after a reconnection).

use std::collections::HashMap;
use std::time::Instant;

use wfs_abi::{Opcode, ReplyBody, errno};

use super::{Counters, Engine, kernel_errno};
use crate::names::NameMsg;
use crate::protocol::HostId;
use crate::wire::PeerMsg;

/// SETTIMES asked of other owners and not yet answered.
#[derive(Debug, Default)]
pub(super) struct Times {
    /// By id: the kernel's request, when it came, the owner asked.
    asking: HashMap<u64, (u64, Instant, HostId)>,
    next_id: u64,
}

impl Engine {
    /// The kernel's SETTIMES `req`: `file`'s modification time to
    /// `sec`.`nsec`.
    pub(super) fn settimes(&mut self, req: u64, file: u64, sec: i64, nsec: u32, started: Instant) {
        let result = match self.size_owner(file) {
            None => Err(errno::ENOENT),
            Some(owner) if owner == self.me => self.export.set_mtime(file, sec, nsec),
            Some(owner) if !self.is_connected(owner) => Err(errno::EIO),
            Some(owner) => {
                self.times.next_id += 1;
                let id = self.times.next_id;
                self.times.asking.insert(id, (req, started, owner));
                let msg = NameMsg::SetTimes {
                    id,
                    file,
                    sec,
                    nsec,
                };
                self.send(owner, PeerMsg::Name(msg));
                return;
            }
        };
        self.times_reply(req, started, result);
    }

    fn times_reply(&self, req: u64, started: Instant, result: Result<(), i32>) {
        if result.is_ok() {
            Counters::add(&self.counters.times_set, 1);
        }
        self.reply(
            req,
            Opcode::Settimes,
            started,
            result.map(|()| ReplyBody::Done),
        );
    }

    /// A peer's `SetTimes` `id` of `file`, which should be this host's:
    /// its export sets them, and the asker hears the file's times, then
    /// the answer.
    pub(super) fn times_asked(&mut self, from: HostId, id: u64, file: u64, sec: i64, nsec: u32) {
        let error = match self.export.set_mtime(file, sec, nsec) {
            Ok(()) => {
                if let Ok(a) = self.export.getattr(file) {
                    self.send(from, PeerMsg::Size(super::times_of(file, &a)));
                }
                0
            }
            Err(e) => e,
        };
        self.send(from, PeerMsg::Name(NameMsg::TimesSet { id, error }));
    }

    /// The owner's answer to this host's `SetTimes` `id`.
    pub(super) fn times_answered(&mut self, from: HostId, id: u64, error: i32) {
        match self.times.asking.get(&id) {
            Some(&(req, started, owner)) if owner == from => {
                self.times.asking.remove(&id);
                let result = if error == 0 {
                    Ok(())
                } else {
                    Err(kernel_errno(error))
                };
                self.times_reply(req, started, result);
            }
            _ => {}
        }
    }

    /// Host `host` cannot be reached any more: what this host asked of it
    /// fails (`EIO`).
    pub(super) fn times_owner_unreachable(&mut self, host: HostId) {
        let lost: Vec<u64> = self
            .times
            .asking
            .iter()
            .filter(|(_, (_, _, owner))| *owner == host)
            .map(|(&id, _)| id)
            .collect();
        for id in lost {
            if let Some((req, started, _)) = self.times.asking.remove(&id) {
                self.times_reply(req, started, Err(errno::EIO));
            }
        }
    }
}
