//! A resumable message stream between two managers, as pure code.
//!
//! The page protocol ([`crate::protocol`]) needs each pair's messages
//! delivered once and in order. TCP gives that within one connection, but
//! a connection can drop with messages in flight, and the cluster
//! reconnects. A [`Session`] numbers the messages it sends, keeps each one
//! until the peer acknowledges it, and after a reconnection sends again
//! every message the peer has not acknowledged; the receiving side drops
//! what it has seen already. So the protocol sees one exactly-once, in-order
//! stream per peer for as long as both managers live, whatever happens to
//! the connections in between: requests in flight are retried, never lost,
//! and no page is left without a holder.
//!
//! A manager that restarts loses its sessions; its peers learn it from the
//! handshake (a new incarnation) and must fail what was in flight with it.

use std::collections::VecDeque;

/// One numbered message on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<M> {
    /// Sequence number of `msg` in this direction (from 1); 0 for a frame
    /// that only acknowledges.
    pub seq: u64,
    /// Every message of the other direction up to this number has arrived.
    pub ack: u64,
    /// The message, or `None` for a bare acknowledgement.
    pub msg: Option<M>,
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// A sequence number beyond the next one expected: messages in between
    /// were lost within one connection, which TCP does not do. The
    /// connection should be dropped (the peer then sends again).
    Gap { expected: u64, got: u64 },
    /// An acknowledgement of messages never sent.
    BadAck { ack: u64, sent: u64 },
}

/// This side of the stream with one peer.
#[derive(Debug)]
pub struct Session<M> {
    /// Number of the last message sent.
    sent: u64,
    /// Messages sent and not yet acknowledged, oldest first.
    unacked: VecDeque<(u64, M)>,
    /// Number of the last message received and delivered.
    received: u64,
    /// Number of the last message handed to a connection: the peer may
    /// have received those up to it, and none after it.
    handed: u64,
}

impl<M: Clone> Default for Session<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Clone> Session<M> {
    /// A fresh session: nothing sent, nothing received.
    pub fn new() -> Self {
        Session {
            sent: 0,
            unacked: VecDeque::new(),
            received: 0,
            handed: 0,
        }
    }

    /// Every message sent so far has been handed to a connection (written,
    /// or queued to be written): the peer may have received any of them.
    /// Messages sent while there is no connection reach the peer only
    /// after a later call.
    pub fn handed(&mut self) {
        self.handed = self.sent;
    }

    /// Numbers `msg` for sending, keeps it until acknowledged, and returns
    /// the frame to write on the current connection (if there is one).
    pub fn send(&mut self, msg: M) -> Frame<M> {
        self.sent += 1;
        self.unacked.push_back((self.sent, msg.clone()));
        Frame {
            seq: self.sent,
            ack: self.received,
            msg: Some(msg),
        }
    }

    /// Takes a frame from the peer. Returns the message to deliver: `None`
    /// for a bare acknowledgement or a message delivered before (sent
    /// again after a reconnection).
    pub fn receive(&mut self, frame: Frame<M>) -> Result<Option<M>, SessionError> {
        if frame.ack > self.sent {
            return Err(SessionError::BadAck {
                ack: frame.ack,
                sent: self.sent,
            });
        }
        while self.unacked.front().is_some_and(|(s, _)| *s <= frame.ack) {
            self.unacked.pop_front();
        }
        let Some(msg) = frame.msg else {
            return Ok(None);
        };
        if frame.seq <= self.received {
            return Ok(None);
        }
        if frame.seq != self.received + 1 {
            return Err(SessionError::Gap {
                expected: self.received + 1,
                got: frame.seq,
            });
        }
        self.received = frame.seq;
        Ok(Some(msg))
    }

    /// A bare acknowledgement of everything received so far.
    pub fn ack(&self) -> Frame<M> {
        Frame {
            seq: 0,
            ack: self.received,
            msg: None,
        }
    }

    /// After a new connection to the peer: every message it has not
    /// acknowledged, in order, to write first.
    pub fn resend(&self) -> Vec<Frame<M>> {
        self.unacked
            .iter()
            .map(|(seq, msg)| Frame {
                seq: *seq,
                ack: self.received,
                msg: Some(msg.clone()),
            })
            .collect()
    }

    /// The peer's manager is gone (its incarnation died): returns every
    /// message it has not acknowledged, in order, and starts afresh for the
    /// next incarnation. The first are those handed to a connection
    /// (whether the peer got them is unknown), the second those never
    /// handed to one (the peer cannot have got them).
    pub fn abandon(&mut self) -> (Vec<M>, Vec<M>) {
        let unacked = std::mem::take(&mut self.unacked);
        let handed = self.handed;
        *self = Session::new();
        let (maybe, never): (Vec<_>, Vec<_>) =
            unacked.into_iter().partition(|&(seq, _)| seq <= handed);
        (
            maybe.into_iter().map(|(_, m)| m).collect(),
            never.into_iter().map(|(_, m)| m).collect(),
        )
    }

    /// Number of the last message received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Number of the last message sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Messages sent and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len()
    }

    /// Number of the last message the peer has acknowledged (every one
    /// before it too).
    pub fn acknowledged(&self) -> u64 {
        self.unacked.front().map_or(self.sent, |&(seq, _)| seq - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_counts_what_the_peer_has_acknowledged() {
        let mut a: Session<&str> = Session::new();
        let mut b: Session<&str> = Session::new();
        assert_eq!(a.acknowledged(), 0);
        let f1 = a.send("one");
        let f2 = a.send("two");
        a.send("three");
        assert_eq!((a.acknowledged(), a.unacknowledged()), (0, 3));
        b.receive(f1).unwrap();
        b.receive(f2).unwrap();
        a.receive(b.ack()).unwrap();
        assert_eq!((a.acknowledged(), a.unacknowledged()), (2, 1));
    }

    #[test]
    fn in_order_once_across_a_reconnection() {
        let mut a: Session<&str> = Session::new();
        let mut b: Session<&str> = Session::new();
        let f1 = a.send("one");
        let f2 = a.send("two");
        let _lost = a.send("three");
        assert_eq!(b.receive(f1), Ok(Some("one")));
        assert_eq!(b.receive(f2), Ok(Some("two")));
        // The connection drops with "three" and every ack in flight; after
        // the reconnection a sends all it has not seen acknowledged.
        let again = a.resend();
        assert_eq!(again.len(), 3);
        let got: Vec<_> = again
            .into_iter()
            .filter_map(|f| b.receive(f).unwrap())
            .collect();
        assert_eq!(got, ["three"]);
        // b's acknowledgement lets a forget them.
        assert_eq!(a.receive(b.ack()), Ok(None));
        assert_eq!(a.unacknowledged(), 0);
        assert!(a.resend().is_empty());
    }

    #[test]
    fn acknowledgements_ride_on_messages() {
        let mut a: Session<u32> = Session::new();
        let mut b: Session<u32> = Session::new();
        let f = a.send(1);
        assert_eq!(b.receive(f), Ok(Some(1)));
        let back = b.send(2);
        assert_eq!(back.ack, 1);
        assert_eq!(a.receive(back), Ok(Some(2)));
        assert_eq!(a.unacknowledged(), 0);
        assert_eq!(b.unacknowledged(), 1);
    }

    #[test]
    fn refuses_gaps_and_bogus_acks() {
        let mut a: Session<u32> = Session::new();
        let mut b: Session<u32> = Session::new();
        let _ = a.send(1);
        let f2 = a.send(2);
        assert_eq!(
            b.receive(f2),
            Err(SessionError::Gap {
                expected: 1,
                got: 2
            })
        );
        let bogus = Frame {
            seq: 0,
            ack: 5,
            msg: None,
        };
        assert_eq!(
            a.receive(bogus),
            Err(SessionError::BadAck { ack: 5, sent: 2 })
        );
        // Nothing changed: the resend still carries both.
        assert_eq!(a.resend().len(), 2);
    }

    #[test]
    fn abandon_hands_back_the_unacknowledged() {
        let mut a: Session<u32> = Session::new();
        let mut b: Session<u32> = Session::new();
        let f1 = a.send(1);
        let _f2 = a.send(2);
        a.handed();
        // Sent while there was no connection.
        let _f3 = a.send(3);
        assert_eq!(b.receive(f1), Ok(Some(1)));
        assert_eq!(a.receive(b.ack()), Ok(None));
        assert_eq!(a.abandon(), (vec![2], vec![3]));
        // A fresh session: numbering starts again, nothing to resend.
        assert!(a.resend().is_empty());
        assert_eq!(a.send(4).seq, 1);
        assert_eq!(a.received(), 0);
        // Nothing of the new session has been handed yet.
        assert_eq!(a.abandon(), (vec![], vec![4]));
    }
}
