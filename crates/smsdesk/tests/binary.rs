//! The `smsdesk` binary as an operator runs it: `migrate` on a fresh database, and a setting it
//! refuses with a reason and a failing exit code. (Building this test also builds the binary that
//! the fleet suite in `tests/` starts several of.)

use std::process::Command;

fn smsdesk() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsdesk"));
    // Nothing from the environment the tests run in may change what the binary does.
    for (name, _) in std::env::vars() {
        if name.starts_with("SMSDESK_") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn migrate_creates_the_schema_of_a_new_sqlite_database_and_says_so() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = dir.path().join("fresh.db");
    let output = smsdesk()
        .arg("migrate")
        .env(
            "SMSDESK_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        )
        .env("SMSDESK_DATA_DIR", dir.path())
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "migrate succeeds: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::metadata(&database).is_ok_and(|file| file.len() > 0),
        "the database file holds the schema"
    );
}

#[test]
fn an_unusable_setting_is_refused_with_its_name_and_a_failing_exit_code() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = smsdesk()
        .arg("migrate")
        .env("SMSDESK_DATABASE_URL", "mysql://somewhere/db")
        .env("SMSDESK_DATA_DIR", dir.path())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "a failing exit code");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("mysql"),
        "says what it refused: {stderr}"
    );
}
