//! `log.topic` (Mosquitto's `log_dest topic`): log lines published on
//! `$SYS/broker/log/E` (errors), `W` (warnings) and `N` (notices: fleetmq's
//! info lines, which are Mosquitto's notices, such as "New client connected
//! from ..."), as Mosquitto 2.0.11 publishes them: QoS 2, not retained,
//! message expiry 20 s, payload `SECONDS: line`.
//!
//! Debug and trace lines are never published, as Mosquitto never publishes
//! its debug lines: they describe the publish path, and a line about a
//! publish would be a publish. What is left cannot feed itself:
//! - a line logged while this module's own publish runs on a thread is
//!   ignored (a thread-local guard);
//! - the [`TopicLayer`] only `try_send`s into a channel of
//!   [`CHANNEL_LINES`]; a full channel drops the line and counts it, so
//!   logging never waits on the broker;
//! - the publishing task sends at most [`LINES_PER_SECOND`] lines a second
//!   and then drops, counted, and says how many it dropped.
//!
//! Owns: the layer, the channel and the publishing task. Must not: block,
//! log through `tracing` from inside the layer, or decide which lines are
//! logged (the filter of `log.rs` does).

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use fleetmq_codec::{PublishProperties, QoS};
use fleetmq_core::engine::Engine;
use fleetmq_core::message::Message;

/// Lines waiting to be published at most.
pub const CHANNEL_LINES: usize = 1024;
/// Lines published per second at most.
pub const LINES_PER_SECOND: u32 = 500;
/// Message Expiry Interval of each line, as Mosquitto sets it.
const EXPIRY_SECS: u32 = 20;

/// One log line for the topic.
#[derive(Debug)]
struct Line {
    level: Level,
    unix_secs: u64,
    text: String,
}

/// The receiving end, taken by [`spawn`] once the engine exists.
static RECEIVER: Mutex<Option<mpsc::Receiver<Line>>> = Mutex::new(None);
/// Lines dropped because the channel was full.
static DROPPED_FULL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while this module publishes a line on this thread.
    static PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

/// The `tracing` layer feeding the channel.
pub struct TopicLayer {
    sender: mpsc::Sender<Line>,
}

/// The layer for `log.topic`; its lines wait for [`spawn`].
pub(super) fn layer() -> TopicLayer {
    let (sender, receiver) = mpsc::channel(CHANNEL_LINES);
    let mut slot = match RECEIVER.lock() {
        Ok(slot) => slot,
        Err(poisoned) => poisoned.into_inner(),
    };
    *slot = Some(receiver);
    TopicLayer { sender }
}

/// The topic letter of `level`; `None`: not published.
fn letter(level: &Level) -> Option<&'static str> {
    match *level {
        Level::ERROR => Some("E"),
        Level::WARN => Some("W"),
        Level::INFO => Some("N"),
        _ => None,
    }
}

impl<S: Subscriber> Layer<S> for TopicLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if letter(&level).is_none() || PUBLISHING.with(Cell::get) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0);
        let line = Line {
            level,
            unix_secs,
            text: super::log::escape_controls(&text.0, false).into_owned(),
        };
        if self.sender.try_send(line).is_err() {
            DROPPED_FULL.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The message of an event, then its other fields as `name=value`.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let message = format!("{value:?}");
            self.0.insert_str(0, &message);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// Starts publishing the lines of `log.topic`, if its layer was set up.
pub fn spawn(broker: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let receiver = match RECEIVER.lock() {
        Ok(mut slot) => slot.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    let Some(mut receiver) = receiver else {
        return;
    };
    tokio::spawn(async move {
        let mut window = Instant::now();
        let mut sent_in_window = 0u32;
        let mut dropped_rate = 0u64;
        loop {
            let line = tokio::select! {
                line = receiver.recv() => line,
                _ = shutdown.changed() => return,
            };
            let Some(line) = line else { return };
            if window.elapsed() >= Duration::from_secs(1) {
                let full = DROPPED_FULL.swap(0, Ordering::Relaxed);
                if dropped_rate + full > 0 {
                    let text = format!(
                        "{} log lines not published on $SYS/broker/log (more than {LINES_PER_SECOND} a second, or {CHANNEL_LINES} waiting).",
                        dropped_rate + full
                    );
                    publish(&broker, Level::WARN, line.unix_secs, &text);
                }
                window = Instant::now();
                sent_in_window = 0;
                dropped_rate = 0;
            }
            if sent_in_window >= LINES_PER_SECOND {
                dropped_rate += 1;
                continue;
            }
            sent_in_window += 1;
            publish(&broker, line.level, line.unix_secs, &line.text);
        }
    });
}

/// Publishes one line, with lines logged meanwhile on this thread ignored.
fn publish(broker: &Engine, level: Level, unix_secs: u64, text: &str) {
    let Some(letter) = letter(&level) else {
        return;
    };
    let topic: Arc<str> = Arc::from(format!("$SYS/broker/log/{letter}"));
    let properties = PublishProperties {
        message_expiry_interval: Some(EXPIRY_SECS),
        ..PublishProperties::default()
    };
    let message = Arc::new(Message {
        topic,
        payload: Bytes::from(format!("{unix_secs}: {text}")),
        qos: QoS::ExactlyOnce,
        retain: false,
        expires_at: Message::expiry_deadline(Some(EXPIRY_SECS), Instant::now()),
        properties,
        publisher: None,
    });
    PUBLISHING.with(|flag| flag.set(true));
    broker.publish(message);
    PUBLISHING.with(|flag| flag.set(false));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_mosquitto_letters_and_debug_is_never_published() {
        assert_eq!(letter(&Level::ERROR), Some("E"));
        assert_eq!(letter(&Level::WARN), Some("W"));
        assert_eq!(letter(&Level::INFO), Some("N"));
        assert_eq!(letter(&Level::DEBUG), None);
        assert_eq!(letter(&Level::TRACE), None);
    }

    #[test]
    fn message_comes_first_then_fields() {
        use tracing_subscriber::layer::SubscriberExt;
        let (sender, mut receiver) = mpsc::channel(8);
        let subscriber = tracing_subscriber::registry().with(TopicLayer { sender });
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(client = "dev-1", "New client connected\nforged");
            tracing::debug!("not published");
            PUBLISHING.with(|flag| flag.set(true));
            tracing::warn!("ignored while publishing");
            PUBLISHING.with(|flag| flag.set(false));
            tracing::error!("disk full");
        });
        let first = receiver.try_recv().unwrap();
        assert_eq!(first.level, Level::INFO);
        assert_eq!(first.text, "New client connected\\nforged client=dev-1");
        let second = receiver.try_recv().unwrap();
        assert_eq!(
            (second.level, second.text.as_str()),
            (Level::ERROR, "disk full")
        );
        assert!(receiver.try_recv().is_err());
    }
}
