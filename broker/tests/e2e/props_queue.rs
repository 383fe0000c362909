//! Property tests of the session queue bounds (`limits.max_queued_messages`
//! and `max_queued_bytes`) under random pushes, pops and put-backs, against
//! a plain model: the count and byte bounds hold (one oversized message may
//! enter an empty queue), every refusal is counted, the byte count is exact,
//! and the order is FIFO with the drop-newest policy.
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use fleetmq_codec::QoS;
use fleetmq_core::message::Message;
use fleetmq_core::session::{EnqueueOutcome, Queue, QueueLimits, Queued};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
    /// Pop and put back at the front (inflight window full).
    PopAndPutBack,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300).prop_map(Op::Push),
        3 => Just(Op::Pop),
        1 => Just(Op::PopAndPutBack),
        1 => Just(Op::Clear),
    ]
}

fn item(n: u64, payload_len: usize) -> Queued {
    Queued {
        message: Arc::new(Message {
            topic: Arc::from(format!("t/{n}")),
            payload: Bytes::from(vec![0u8; payload_len]),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            publisher: None,
        }),
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Vec::new(),
        seq: Some(n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn queue_bounds_hold_and_drops_are_counted(
        max_messages in 0usize..12,
        max_bytes in prop_oneof![Just(0usize), 1usize..2000],
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut queue = Queue::new(QueueLimits { max_messages, max_bytes, full_wait: std::time::Duration::ZERO, offline_qos0: false });
        let mut model: VecDeque<(u64, usize)> = VecDeque::new();
        let mut refused = 0u64;
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Push(len) => {
                    next += 1;
                    let queued = item(next, len);
                    let size = queued.message.size();
                    let bytes: usize = model.iter().map(|(_, s)| s).sum();
                    let count_full = max_messages != 0 && model.len() >= max_messages;
                    let bytes_full = max_bytes != 0 && !model.is_empty() && bytes + size > max_bytes;
                    let outcome = queue.push(queued);
                    if count_full || bytes_full {
                        prop_assert_eq!(outcome, EnqueueOutcome::Dropped);
                        refused += 1;
                    } else {
                        prop_assert_eq!(outcome, EnqueueOutcome::Queued);
                        model.push_back((next, size));
                    }
                }
                Op::Pop => {
                    let popped = queue.pop().map(|q| q.seq.unwrap());
                    prop_assert_eq!(popped, model.pop_front().map(|(n, _)| n));
                }
                Op::PopAndPutBack => {
                    if let Some(popped) = queue.pop() {
                        prop_assert_eq!(popped.seq, model.front().map(|(n, _)| *n));
                        queue.push_front(popped);
                    }
                }
                Op::Clear => {
                    queue.clear();
                    model.clear();
                }
            }
            let bytes: usize = model.iter().map(|(_, s)| s).sum();
            prop_assert_eq!(queue.len(), model.len());
            prop_assert_eq!(queue.bytes(), bytes);
            prop_assert_eq!(queue.dropped, refused);
            if max_messages != 0 {
                prop_assert!(queue.len() <= max_messages);
            }
            if max_bytes != 0 && queue.len() > 1 {
                prop_assert!(queue.bytes() <= max_bytes);
            }
        }
    }
}
