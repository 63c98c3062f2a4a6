//! Group commit of the owner's disk writes.
//!
//! An owner acknowledges a `Put` only once its data is on stable storage
//! (`fdatasync`). One `fdatasync` per page would make every writeback wait
//! for a disk flush of its own, with the engine's lock held meanwhile. So
//! the engine writes a page into the export file (the page cache: fast) and
//! hands the open file here; one thread flushes what has gathered, each file
//! once, and reports every write of the batch with the result. While it
//! flushes, the next batch gathers: many `Put`s arriving together cost one
//! flush per file, and the engine serves other pages meanwhile.
//!
//! Files are told apart by device and inode, not by name (a name replaced
//! between two writes, `mv` over it, is another file, flushed by itself).
//! The export keeps each file open and writes through that one open file
//! description, which is what is flushed. Linux reports a failed write-back
//! to each open file description once: so a flush that fails may have
//! reported the failure of a write that waits in a later batch (made while
//! the flush ran), whose own flush then succeeds. A write therefore fails
//! if any flush of its file that ended after the write began failed, not
//! only its own batch's: [`Committer::push`] takes when the write began.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// An open file to flush (shared: the export keeps its files open).
pub type Fd = Arc<File>;

use crate::export::Inode;

/// A write made into the page cache, waiting for its flush.
struct Pending<T> {
    /// Its file's inode (writes of one file share a flush).
    inode: Inode,
    /// The file the write was made through; `None` when an earlier write
    /// of the batch to the same inode keeps one (it is flushed through
    /// that).
    fd: Option<Fd>,
    /// When the write began.
    began: Instant,
    /// What to report with the result.
    token: T,
}

/// One flushed batch: every write of it with its result (0 or an errno),
/// in the order they were handed in, and how many flushes it took.
#[derive(Debug)]
pub struct Flushed<T> {
    /// The writes and their results.
    pub done: Vec<(T, i32)>,
    /// `fdatasync` calls made (one per file of the batch).
    pub syncs: u64,
}

struct Queue<T> {
    waiting: Vec<Pending<T>>,
    stop: bool,
}

/// The queue of writes waiting for a flush, and its thread.
pub struct Committer<T> {
    queue: Mutex<Queue<T>>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Send + 'static> Committer<T> {
    /// Starts the flushing thread; each flushed batch goes to `report`.
    pub fn start(
        report: impl Fn(Flushed<T>) + Send + 'static,
    ) -> std::io::Result<Arc<Committer<T>>> {
        let c = Arc::new(Committer {
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let me = c.clone();
        std::thread::Builder::new()
            .name("disk-commit".into())
            .spawn(move || {
                let mut failures = Failures::default();
                while let Some(batch) = me.next_batch() {
                    report(flush(batch, &mut failures, |f: &File| f.sync_data()));
                }
            })?;
        Ok(c)
    }

    /// Hands in a write made through `fd`, open on `inode`, that began at
    /// `began` (before its `pwrite`), to be reported with `token`.
    pub fn push(&self, fd: Fd, inode: Inode, began: Instant, token: T) {
        enqueue(&mut lock(&self.queue).waiting, fd, inode, began, token);
        self.wake.notify_one();
    }

    /// Stops the thread once what is queued is flushed.
    pub fn stop(&self) {
        lock(&self.queue).stop = true;
        self.wake.notify_one();
    }

    /// Waits for writes; `None` once stopped with nothing left.
    fn next_batch(&self) -> Option<Vec<Pending<T>>> {
        let mut q = lock(&self.queue);
        loop {
            if !q.waiting.is_empty() {
                return Some(std::mem::take(&mut q.waiting));
            }
            if q.stop {
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Adds a write made through `fd` to `waiting`, keeping `fd` only if no
/// write waiting there has the same inode.
fn enqueue<T>(waiting: &mut Vec<Pending<T>>, fd: Fd, inode: Inode, began: Instant, token: T) {
    let kept = waiting.iter().any(|w| w.inode == inode);
    waiting.push(Pending {
        inode,
        fd: (!kept).then_some(fd),
        began,
        token,
    });
}

/// The last failed flush of each file: when it ended, and its errno.
type Failures = HashMap<Inode, (Instant, i32)>;

/// Flushes `batch` with `sync`: each inode once, through its first
/// write's file. A write fails with its flush's error, or with that of an
/// earlier failed flush of its file that ended after the write began.
fn flush<T>(
    batch: Vec<Pending<T>>,
    failures: &mut Failures,
    sync: impl Fn(&File) -> std::io::Result<()>,
) -> Flushed<T> {
    let mut results: Vec<(Inode, i32)> = Vec::new();
    let mut syncs = 0;
    let oldest = batch.iter().map(|p| p.began).min();
    let done = batch
        .into_iter()
        .map(|p| {
            let mut error = match &p.fd {
                Some(fd) => {
                    syncs += 1;
                    let error = match sync(fd) {
                        Ok(()) => 0,
                        Err(e) => e.raw_os_error().unwrap_or(wfs_abi::errno::EIO),
                    };
                    if error != 0 {
                        failures.insert(p.inode, (Instant::now(), error));
                    }
                    results.push((p.inode, error));
                    error
                }
                // (The first write of its inode, earlier in the batch,
                // was flushed: `enqueue` kept its file.)
                None => results
                    .iter()
                    .find(|&&(i, _)| i == p.inode)
                    .map_or(wfs_abi::errno::EIO, |&(_, e)| e),
            };
            if error == 0
                && let Some(&(ended, e)) = failures.get(&p.inode)
                && ended > p.began
            {
                error = e;
            }
            (p.token, error)
        })
        .collect();
    // Writes are handed in in the order they began (the engine makes them
    // one at a time): a failure that ended before the batch's oldest write
    // began concerns no later one either.
    if let Some(oldest) = oldest {
        failures.retain(|_, &mut (ended, _)| ended >= oldest);
    }
    Flushed { done, syncs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::time::Duration;

    fn tmpdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wfs-commit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn file(dir: &Path, name: &str) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(name))
            .expect("open")
    }

    /// Appends `byte` to `name` through a file of its own, as the engine
    /// writes, and queues the write in `batch`.
    fn write(batch: &mut Vec<Pending<usize>>, dir: &Path, name: &str, token: usize) {
        let began = Instant::now();
        let mut fd = file(dir, name);
        fd.seek(std::io::SeekFrom::End(0)).expect("seek");
        fd.write_all(&[token as u8]).expect("write");
        let inode = inode_of(&fd);
        enqueue(batch, Arc::new(fd), inode, began, token);
    }

    fn inode_of(f: &File) -> Inode {
        use std::os::unix::fs::MetadataExt;
        let md = f.metadata().expect("fstat");
        (md.dev(), md.ino())
    }

    fn sync(f: &File) -> std::io::Result<()> {
        f.sync_data()
    }

    #[test]
    fn a_batch_flushes_each_file_once_and_reports_every_write_in_order() {
        let dir = tmpdir("order");
        let mut batch = Vec::new();
        for (i, name) in ["a", "b", "a", "a", "b"].iter().enumerate() {
            write(&mut batch, &dir, name, i);
        }
        // One file kept open per inode.
        assert_eq!(batch.iter().filter(|p| p.fd.is_some()).count(), 2);
        let f = flush(batch, &mut Failures::default(), sync);
        assert_eq!(f.syncs, 2);
        assert_eq!(f.done, vec![(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)]);
        let mut a = Vec::new();
        file(&dir, "a").read_to_end(&mut a).expect("read");
        assert_eq!(a, vec![0, 2, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_name_replaced_between_two_writes_is_two_files_each_flushed() {
        let dir = tmpdir("replaced");
        let mut batch = Vec::new();
        write(&mut batch, &dir, "f", 0);
        // `mv g f`: the name now stands for another inode.
        std::fs::write(dir.join("g"), b"new").expect("write g");
        std::fs::rename(dir.join("g"), dir.join("f")).expect("rename");
        write(&mut batch, &dir, "f", 1);
        assert!(batch.iter().all(|p| p.fd.is_some()));
        let f = flush(batch, &mut Failures::default(), sync);
        assert_eq!((f.syncs, f.done), (2, vec![(0, 0), (1, 0)]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_write_fails_with_a_failed_flush_of_its_file_that_ended_after_it_began() {
        // The flush of batch 1 fails, and may have reported the failure of
        // write 1, made while it ran: write 1 fails too, though its own
        // flush (batch 2) succeeds. Write 2, begun after that failure,
        // succeeds; so does a write of another file.
        let dir = tmpdir("failed");
        let failing = |_: &File| Err(std::io::Error::from_raw_os_error(28));
        let mut failures = Failures::default();
        let mut batch1 = Vec::new();
        write(&mut batch1, &dir, "f", 0);
        let mut batch2 = Vec::new();
        write(&mut batch2, &dir, "f", 1);
        write(&mut batch2, &dir, "g", 2);
        let f1 = flush(batch1, &mut failures, failing);
        assert_eq!(f1.done, vec![(0, 28)]);
        let f2 = flush(batch2, &mut failures, sync);
        assert_eq!(f2.done, vec![(1, 28), (2, 0)]);
        let mut batch3 = Vec::new();
        write(&mut batch3, &dir, "f", 3);
        let f3 = flush(batch3, &mut failures, sync);
        assert_eq!(f3.done, vec![(3, 0)]);
        // (The failure concerns no write still to come.)
        assert!(failures.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writes_handed_in_while_a_flush_runs_gather_into_the_next_batch() {
        let dir = tmpdir("gather");
        let (tx, rx) = mpsc::channel();
        // The first report blocks until the test has handed in ten more
        // writes: they must come back as one batch with one flush.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let c = Committer::start(move |f: Flushed<usize>| {
            let first = f.done.first().map(|d| d.0) == Some(0);
            tx.send(f).expect("report");
            if first {
                let _ = lock(&go_rx).recv_timeout(Duration::from_secs(10));
            }
        })
        .expect("start");
        let f = file(&dir, "f");
        let inode = inode_of(&f);
        c.push(Arc::new(f), inode, Instant::now(), 0);
        let first = rx.recv_timeout(Duration::from_secs(10)).expect("first");
        assert_eq!((first.done, first.syncs), (vec![(0, 0)], 1));
        for i in 1..=10 {
            c.push(Arc::new(file(&dir, "f")), inode, Instant::now(), i);
        }
        go_tx.send(()).expect("go");
        let second = rx.recv_timeout(Duration::from_secs(10)).expect("second");
        assert_eq!(second.syncs, 1);
        assert_eq!(second.done, (1..=10).map(|i| (i, 0)).collect::<Vec<_>>());
        c.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
