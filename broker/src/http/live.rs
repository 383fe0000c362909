//! `GET /api/events`: Server-Sent Events that keep the dashboard live.
//!
//! Each event is a whole snapshot (connected clients, recent disconnects,
//! handshake summary), sent when the registry changes (at most every
//! [`THROTTLE`], so a connect storm costs a few snapshots, not one per
//! connect) and every [`REFRESH`] for the traffic counters. Snapshots
//! rather than deltas: the page never drifts, and a reconnecting
//! `EventSource` is in sync with its first message. A lab has hundreds of
//! devices, not millions; at that size a snapshot is tens of kilobytes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;

use super::AppState;

/// Shortest time between two snapshots caused by changes.
const THROTTLE: Duration = Duration::from_millis(250);
/// Longest time between two snapshots (counters change without events).
const REFRESH: Duration = Duration::from_secs(2);

/// Where the stream is.
struct Cursor {
    state: AppState,
    changes: tokio::sync::watch::Receiver<u64>,
    first: bool,
}

pub(super) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let cursor = Cursor {
        changes: state.registry.watch(),
        state,
        first: true,
    };
    let snapshots = stream::unfold(cursor, |mut cursor| async move {
        if !cursor.first {
            let mut shutdown = cursor.state.shutdown.clone();
            let stopping = async move {
                // The guard `wait_for` returns must not live across an await.
                let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
            };
            tokio::select! {
                changed = cursor.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    tokio::time::sleep(THROTTLE).await;
                }
                _ = tokio::time::sleep(REFRESH) => {}
                _ = stopping => return None,
            }
        }
        cursor.first = false;
        // Seen up to here: changes after this point wake the next turn.
        cursor.changes.borrow_and_update();
        let registry = &cursor.state.registry;
        let snapshot = json!({
            "clients": registry.clients(),
            "disconnected": registry.disconnected(),
            "summary": registry.summary(),
        });
        let event = Event::default()
            .event("snapshot")
            .json_data(&snapshot)
            .unwrap_or_else(|error| Event::default().event("error").data(error.to_string()));
        Some((Ok(event), cursor))
    });
    Sse::new(snapshots).keep_alive(KeepAlive::default())
}
