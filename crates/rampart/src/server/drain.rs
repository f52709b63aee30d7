//! Draining on shutdown: every connection task holds a [`DrainWatch`]; [`Drain::start`] signals
//! them all and resolves once the last one has ended.
//!
//! hyper-util's `GracefulShutdown` is the same watch channel, but it only watches connection types
//! that implement its sealed `GracefulConnection` trait. An HTTP/1 connection here is a loop over
//! several hyper connections (one per busy period, see `keep_alive.rs`), so it takes the signal
//! itself.

use tokio::sync::watch;

pub(crate) struct Drain {
    tx: watch::Sender<()>,
}

pub(crate) struct DrainWatch {
    rx: watch::Receiver<()>,
    started: bool,
}

impl Drain {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::channel(()).0,
        }
    }

    pub(crate) fn watch(&self) -> DrainWatch {
        DrainWatch {
            rx: self.tx.subscribe(),
            started: false,
        }
    }

    /// Signals every watch, then waits until every one of them has been dropped.
    pub(crate) async fn start(&self) {
        self.tx.send_replace(());
        self.tx.closed().await;
    }
}

impl DrainWatch {
    /// Resolves once draining has started; at once on every call after that.
    pub(crate) async fn started(&mut self) {
        if !self.started {
            // An error means the `Drain` is gone: nothing will wait for this connection either.
            let _ = self.rx.changed().await;
            self.started = true;
        }
    }

    pub(crate) fn has_started(&mut self) -> bool {
        self.started |= self.rx.has_changed().unwrap_or(true);
        self.started
    }

    /// A second handle on the same signal that is only ever read, never waited on: for a loop
    /// woken many times while it waits (`keep_alive::serve_until_idle`), which waits on `started`
    /// once, to register its wake-up, and then reads this.
    pub(crate) fn probe(&self) -> DrainProbe {
        DrainProbe(self.rx.clone())
    }
}

/// See [`DrainWatch::probe`]. Reading it is one atomic load; polling `started` again takes the
/// channel's notifier lock each time.
pub(crate) struct DrainProbe(watch::Receiver<()>);

impl DrainProbe {
    /// Whether draining started after this probe was made (or the `Drain` is gone).
    pub(crate) fn started(&self) -> bool {
        self.0.has_changed().unwrap_or(true)
    }
}
