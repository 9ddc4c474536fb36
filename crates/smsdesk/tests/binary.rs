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

#[test]
fn settings_work_after_the_subcommand_and_a_log_written_to_a_file_is_plain() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = dir.path().join("after.db");
    let log_path = dir.path().join("smsdesk.log");
    let log = std::fs::File::create(&log_path).expect("the log file");
    let status = smsdesk()
        .arg("migrate")
        .arg("--database-url")
        .arg(format!("sqlite://{}?mode=rwc", database.display()))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--log-format")
        .arg("pretty")
        .env_remove("NO_COLOR")
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log)
        .status()
        .expect("the binary runs");
    assert!(status.success(), "options after the subcommand are taken");
    assert!(
        database.is_file(),
        "the database named after the subcommand"
    );
    let written = std::fs::read_to_string(&log_path).expect("the log");
    assert!(!written.trim().is_empty(), "migrate logs what it did");
    assert!(
        !written.contains('\u{1b}'),
        "no colour codes in a file: {written:?}"
    );
}

#[test]
fn every_subcommands_help_lists_the_settings() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["admin", "create-team", "--help"],
    ] {
        let output = smsdesk().args(&args).output().expect("the binary runs");
        let help = String::from_utf8_lossy(&output.stdout);
        for setting in ["--database-url", "--bind", "--log-format"] {
            assert!(help.contains(setting), "{args:?} lists {setting}:\n{help}");
        }
    }
}

#[test]
fn the_example_systemd_unit_verifies() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/smsdesk.service");
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.is_file() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the_example_systemd_unit_verifies: systemd-analyze is not installed (apt install systemd)"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs systemd; systemd-analyze is missing"
        );
        return;
    }
    // The unit as installed, pointing at the binary this build made (verify checks it exists).
    let text = std::fs::read_to_string(unit).expect("the unit");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let copy = dir.path().join("smsdesk.service");
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/smsdesk", env!("CARGO_BIN_EXE_smsdesk")),
    )
    .expect("written");
    let output = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs");
    assert!(
        output.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
