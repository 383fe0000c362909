//! Mosquitto's persistence file (`mosquitto.db`) on hostile bytes: the
//! reader (`fleetmq::mosquitto::db::reader`) and the import plan may
//! refuse a file, never panic; a refusal names an offset inside the file.
#![no_main]

use bytes::Bytes;
use fleetmq::mosquitto::db::{plan, reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match reader::read(Bytes::copy_from_slice(data)) {
        Ok(db) => {
            if let Err(error) = plan::plan(&db, 1_796_329_170) {
                assert!(error.offset <= data.len(), "{error}");
            }
        }
        Err(error) => assert!(error.offset <= data.len(), "{error}"),
    }
});
