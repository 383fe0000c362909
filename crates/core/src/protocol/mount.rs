//! A listener's mount point (Mosquitto's `mount_point`): a topic prefix
//! that puts this listener's clients in a subtree of their own.
//!
//! As Mosquitto 2.0 does: the prefix is added to the topics of PUBLISH and
//! the will, to SUBSCRIBE and UNSUBSCRIBE filters (after they are
//! validated as the client wrote them, before ACLs, which see the mounted
//! topic), and removed from the topics delivered to the client; a message
//! whose topic lies outside the prefix (`lab` for mount point `lab/` and
//! filter `lab/#`) is not sent to it. It does not check or route anything
//! itself.

use std::sync::Arc;

use super::ClientProtocol;

impl ClientProtocol {
    /// `topic` under the mount point.
    pub(super) fn mount_topic(&self, topic: Arc<str>) -> Arc<str> {
        match &self.mount_point {
            Some(mount) => Arc::from(format!("{mount}{topic}")),
            None => topic,
        }
    }

    /// `filter` under the mount point; a shared subscription keeps its
    /// `$share/GROUP/` in front.
    pub(super) fn mount_filter(&self, filter: &str) -> String {
        let Some(mount) = &self.mount_point else {
            return filter.to_string();
        };
        if let Some(rest) = filter.strip_prefix("$share/") {
            if let Some((group, inner)) = rest.split_once('/') {
                return format!("$share/{group}/{mount}{inner}");
            }
        }
        format!("{mount}{filter}")
    }

    /// The topic this client sees for a delivered `topic`; None when it
    /// lies outside the mount point (not sent).
    pub(super) fn unmount_topic(&self, topic: &Arc<str>) -> Option<Arc<str>> {
        match &self.mount_point {
            None => Some(Arc::clone(topic)),
            Some(mount) => topic
                .strip_prefix(&**mount)
                .filter(|rest| !rest.is_empty())
                .map(Arc::from),
        }
    }
}
