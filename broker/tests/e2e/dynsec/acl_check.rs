//! `fleetmq acl check` on a configuration with `auth.dynsec_file` names
//! the dynsec role and ACL that decided, or the default access.

use super::{init_file, missing_tools};
use crate::harness::fleet::acl_check;

#[test]
fn acl_check_names_the_deciding_dynsec_role() {
    if missing_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = init_file(dir.path());
    let config = dir.path().join("fleetmq.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:1883\"\n\n[auth]\ndynsec_file = \"{}\"\n",
            file.display()
        ),
    )
    .unwrap();
    let output = acl_check(
        &config,
        &[
            "--username",
            "admin",
            "--action",
            "publish",
            "--topic",
            "$CONTROL/dynamic-security/v1",
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "decided by dynsec role \"admin\": allow publishClientSend $CONTROL/dynamic-security/#"
        ),
        "{text}"
    );
    let output = acl_check(
        &config,
        &[
            "--username",
            "admin",
            "--action",
            "publish",
            "--topic",
            "lab/x",
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("DENY publish lab/x"), "{text}");
    assert!(text.contains("default access denies"), "{text}");
}
