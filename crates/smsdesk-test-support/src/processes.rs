//! Real `smsdesk` processes as replicas of one fleet: [`ReplicaProcess::start`] runs the binary
//! the workspace built (`target/<profile>/smsdesk`, or `SMSDESK_BIN`) in production mode on a
//! loopback address of its own (127.0.0.x), on a shared database and a shared Twilio simulator,
//! and waits until it is ready; [`ReplicaProcess::kill`] ends it with SIGKILL (`kill -9`), as a
//! crash would. Each process's output goes to a log file, printed when it fails to start.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsdesk_store::{SecretCipher, Store, StoreOptions};
use smsdesk_twilio_sim::SimHandle;

use crate::app::TestApp;

/// How long a replica may take to answer `/readyz` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `smsdesk` binary next to this test's executable (`target/<profile>/deps/..` →
/// `target/<profile>/smsdesk`), or the one `SMSDESK_BIN` names. `cargo test --workspace` builds
/// it (the `smsdesk` crate's own binary test needs it). When it is missing the suite says
/// SKIPPED, or fails under CI (`CI` set), where it must run.
pub fn smsdesk_binary(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("SMSDESK_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            let profile_dir = exe.parent()?.parent()?;
            Some(profile_dir.join(format!("smsdesk{}", std::env::consts::EXE_SUFFIX)))
        });
    match found.filter(|path| path.is_file()) {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("{test}: the smsdesk binary is missing; run `cargo test --workspace`")
        }
        None => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: build the binary first (`cargo build -p smsdesk`) or set SMSDESK_BIN"
            );
            None
        }
    }
}

/// What every replica of one fleet shares.
#[derive(Clone)]
pub struct FleetSpec {
    /// The binary to run.
    pub binary: PathBuf,
    /// The shared database.
    pub database_url: String,
    /// The shared encryption key (base64).
    pub encryption_key: String,
    /// The shared Twilio.
    pub sim: Arc<SimHandle>,
    /// More settings, as environment variables (`SMSDESK_…`).
    pub env: Vec<(String, String)>,
}

/// One running `smsdesk` process and a client for it.
pub struct ReplicaProcess {
    /// The client: its `address` is the process's, its `store` the shared database.
    pub app: TestApp,
    child: Option<Child>,
    log: PathBuf,
    _data_dir: tempfile::TempDir,
}

impl ReplicaProcess {
    /// Starts replica number `n` (1, 2, …) of `fleet` on `127.0.0.{n + 1}` and waits until it
    /// answers `/readyz`.
    pub async fn start(fleet: &FleetSpec, n: u8) -> Self {
        let ip = Ipv4Addr::new(127, 0, 0, n + 1);
        // A free port on that address; the process binds it right after.
        let port = TcpListener::bind((ip, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let log = data_dir.path().join("smsdesk.log");
        let output = std::fs::File::create(&log).expect("the log file");
        let mut command = Command::new(&fleet.binary);
        for (name, _) in std::env::vars() {
            if name.starts_with("SMSDESK_") {
                command.env_remove(name);
            }
        }
        let generous = "100000";
        command
            .arg("serve")
            .env("SMSDESK_ENV", "production")
            .env("SMSDESK_BIND", format!("{ip}:{port}"))
            .env("SMSDESK_DATA_DIR", data_dir.path())
            .env("SMSDESK_DATABASE_URL", &fleet.database_url)
            .env("SMSDESK_ENCRYPTION_KEY", &fleet.encryption_key)
            .env("SMSDESK_TWILIO_BASE_URL", fleet.sim.base_url())
            .env("SMSDESK_LOG_FORMAT", "json")
            .env("SMSDESK_RATE_LIMIT_PER_KEY", generous)
            .env("SMSDESK_RATE_LIMIT_PER_KEY_BURST", generous)
            .env("SMSDESK_RATE_LIMIT_PER_IP", generous)
            .env("SMSDESK_RATE_LIMIT_PER_IP_BURST", generous)
            .envs(fleet.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("the log file"))
            .stderr(output);
        let child = command.spawn().expect("the smsdesk binary starts");
        let cipher = SecretCipher::from_base64_keys::<&str>(&fleet.encryption_key, &[])
            .expect("a valid key");
        let store = Store::connect(&fleet.database_url, StoreOptions::new(cipher))
            .await
            .expect("the fleet's database");
        let mut replica = Self {
            app: TestApp::attach(format!("http://{ip}:{port}"), fleet.sim.clone(), store),
            child: Some(child),
            log,
            _data_dir: data_dir,
        };
        replica.wait_until_ready().await;
        replica
    }

    async fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "smsdesk exited with {status} while starting:\n{}",
                    self.output()
                );
            }
            let ready = self
                .app
                .http
                .get(self.app.url("/readyz"))
                .send()
                .await
                .is_ok_and(|answer| answer.status().is_success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "smsdesk was not ready within {START_TIMEOUT:?}:\n{}",
                self.output()
            );
            // A polling interval while the process migrates and binds.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Ends the process with SIGKILL (`kill -9`): no graceful stop, no leaving the roll call,
    /// no lease given back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL delivered");
            let _ = child.wait();
        }
    }

    /// What the process wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
