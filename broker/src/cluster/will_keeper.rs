//! The engine's handle on the will keeper (decision 0183): what each
//! connection reports, in order, handed to the keeper's task in
//! [`super::wills`]. When the task's queue is full, a will is scheduled by
//! this node alone, as without a cluster. It decides nothing else.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use fleetmq_core::cluster::{ArmedWill, WillKeeper};
use fleetmq_core::engine::{Engine, PendingWill};

/// What a connection reported, in order.
#[derive(Debug)]
pub(super) enum Report {
    Connected {
        client_id: Arc<str>,
        generation: u64,
        clean_start: bool,
        will: Option<ArmedWill>,
        /// Dropped once the will is recorded (or given up).
        recorded: Option<oneshot::Sender<()>>,
    },
    Ended {
        client_id: Arc<str>,
        generation: u64,
        will: Option<PendingWill>,
    },
}

/// The engine's handle: hands reports to the task.
#[derive(Debug)]
pub struct Keeper {
    pub(super) sender: mpsc::Sender<Report>,
    pub(super) broker: std::sync::Weak<Engine>,
}

impl WillKeeper for Keeper {
    fn connected(
        &self,
        client_id: Arc<str>,
        generation: u64,
        clean_start: bool,
        will: Option<ArmedWill>,
    ) -> Option<oneshot::Receiver<()>> {
        let (recorded, answer) = match will {
            Some(_) => {
                let (sender, receiver) = oneshot::channel();
                (Some(sender), Some(receiver))
            }
            None => (None, None),
        };
        let report = Report::Connected {
            client_id,
            generation,
            clean_start,
            will,
            recorded,
        };
        if self.sender.try_send(report).is_err() {
            tracing::warn!("Cluster: will keeper overloaded; a will is kept by this node only.");
            return None;
        }
        answer
    }

    fn ended(&self, client_id: Arc<str>, generation: u64, will: Option<PendingWill>) {
        let report = Report::Ended {
            client_id,
            generation,
            will,
        };
        if let Err(error) = self.sender.try_send(report) {
            // As without a cluster: this node publishes it.
            if let Report::Ended {
                will: Some(will), ..
            } = error.into_inner()
            {
                if let Some(broker) = self.broker.upgrade() {
                    broker.schedule_will(will);
                }
            }
        }
    }
}
