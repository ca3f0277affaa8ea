//! A throwaway PostgreSQL cluster for the tests, one per test process, on a free port
//! of 127.0.0.1, with a fresh database for each test that asks.
//!
//! Both the store's unit tests and the integration tests include this file (`#[path]`).
//! It needs Debian's `postgresql` package (or `WASP_PG_BIN`, the directory of `initdb`
//! and `pg_ctl`). Without it a test that asks is skipped and says so, unless
//! `WASP_POSTGRES=required` (as CI sets it). As root, the cluster runs as `nobody`:
//! `initdb` refuses root. A watchdog stops it and removes its files when the test
//! process ends (the harness has no hook at exit). It serves TLS too, with a certificate
//! for 127.0.0.1 signed by a CA made for it ([`Cluster::ca_file`]).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The running cluster.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `runuser -u nobody --` before each server command, as root.
    as_nobody: bool,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// Whether PostgreSQL must be there (CI).
fn required() -> bool {
    std::env::var("WASP_POSTGRES").is_ok_and(|v| v == "required")
}

/// The directory of `initdb` and `pg_ctl`: `WASP_PG_BIN`, Debian's newest, or `PATH`'s.
fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WASP_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

/// The cluster of this test process, started on first use; `None` (and a line on
/// stderr) when PostgreSQL is not installed and not required.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER
        .get_or_init(|| match binaries() {
            Some(bin) => Some(Cluster::start(bin)),
            None if required() => panic!(
                "PostgreSQL is required (WASP_POSTGRES=required) but no initdb was found: \
                 install Debian's postgresql package or set WASP_PG_BIN"
            ),
            None => {
                eprintln!(
                    "skipped: PostgreSQL is not installed (no initdb); WASP_POSTGRES=required \
                     makes this a failure"
                );
                None
            }
        })
        .as_ref()
}

/// The URL of a new, empty database of the cluster, when there is one.
pub fn database() -> Option<String> {
    let cluster = cluster()?;
    Some(cluster.create_database())
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Cluster {
    fn start(bin: PathBuf) -> Self {
        let as_nobody = is_root();
        let dir = std::env::temp_dir().join(format!(
            "wasp-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        if as_nobody {
            run(
                Command::new("chown").args(["nobody:", dir.to_str().expect("utf-8")]),
                "chown the cluster's directory to nobody",
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            bin,
            dir,
            port,
            as_nobody,
        };
        let data = cluster.data();
        let began = std::time::Instant::now();
        cluster.make_certificates();
        run(
            cluster
                .server_command("initdb")
                .args(["-D", &data, "-U", "wasp", "--auth=trust", "-E", "UTF8"])
                .args(["--no-sync", "--locale=C"]),
            "initdb",
        );
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={dir} \
             -c fsync=off -c max_connections=200 -c ssl=on \
             -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
            dir = cluster.dir.display()
        );
        run(
            cluster.server_command("pg_ctl").args([
                "-D",
                &data,
                "-w",
                "-l",
                &format!("{}/server.log", cluster.dir.display()),
                "-o",
                &options,
                "start",
            ]),
            "pg_ctl start",
        );
        eprintln!(
            "PostgreSQL started on 127.0.0.1:{port} in {:?} ({})",
            began.elapsed(),
            cluster.bin.display()
        );
        cluster.watch();
        cluster
    }

    /// A CA, and the server's certificate (for 127.0.0.1) and key signed by it, in the
    /// cluster's directory; the key readable by its owner only, as the server wants.
    fn make_certificates(&self) {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "wasp tests' CA");
        let ca_cert = ca.self_signed(&ca_key).expect("the CA's certificate");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("a server key");
        let mut server =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
        server
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = server
            .signed_by(&key, &issuer)
            .expect("the server's certificate");
        std::fs::write(self.ca_file(), ca_cert.pem()).expect("ca.crt");
        std::fs::write(self.dir.join("server.crt"), cert.pem()).expect("server.crt");
        let key_file = self.dir.join("server.key");
        std::fs::write(&key_file, key.serialize_pem()).expect("server.key");
        std::fs::set_permissions(
            &key_file,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .expect("server.key 0600");
        if self.as_nobody {
            for file in ["server.crt", "server.key"] {
                run(
                    Command::new("chown")
                        .arg("nobody:")
                        .arg(self.dir.join(file)),
                    "chown the server's certificate to nobody",
                );
            }
        }
    }

    /// The CA file that verifies the cluster's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.display())
    }

    /// `program` of the server's binaries, as the cluster's owner.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_nobody {
            let mut command = Command::new("runuser");
            command.args(["-u", "nobody", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// A process that waits for this one to end, then stops the cluster and removes
    /// its files.
    fn watch(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_nobody {
            format!(
                "runuser -u nobody -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data()
            )
        } else {
            format!("{} -D {} -m immediate stop", pg_ctl.display(), self.data())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; \
             rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        // Never waited for: it outlives this process by design.
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the cluster's watchdog starts");
        std::mem::forget(watchdog);
    }

    /// The URL of database `name` (which need not exist).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://wasp@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        run(
            Command::new(self.bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "wasp",
                ])
                .arg(&name),
            "createdb",
        );
        self.url(&name)
    }

    /// Run `sql` in database `url` with `psql`.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The directory of the server's binaries.
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
