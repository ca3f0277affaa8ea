//! What is particular to a server on PostgreSQL (the rest of the server's tests run on
//! both stores, see `server::each_store!`): one server per database, held while it
//! lives, and a URL's password never shown.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::server::{Db, Server};

#[test]
fn one_server_holds_a_postgresql_database_and_stops_when_another_takes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(db) = Db::Postgres.in_dir(dir.path()) else {
        return;
    };
    let url = db.to_str().expect("utf-8").to_owned();
    // A password in the URL (the test cluster trusts, and ignores it) is never shown.
    let with_password = url.replacen("postgres://wasp@", "postgres://wasp:sekret-pw@", 1);
    let mut first = Server::start(std::path::Path::new(&with_password), &[]);
    assert!(!first.log().contains("sekret-pw"), "{}", first.log());
    assert!(
        first.log().contains("postgres://wasp@127.0.0.1:"),
        "{}",
        first.log()
    );

    // A second server on the database is refused, naming why.
    let mut second = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["serve", "--addr", "127.0.0.1:0", "--db", &with_password])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("WASP_APPS", crate::common::example_apps_dir())
        .env("WASP_CACHE_DIR", crate::common::cache_dir())
        .env_remove("WASP_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasp serve runs");
    // Refused at once; one that serves is stopped here, and the test fails.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.try_wait().expect("it runs").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = second.kill();
    let second = second.wait_with_output().expect("its output");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{said}");
    assert!(said.contains("another `wasp serve` is using it"), "{said}");
    assert!(!said.contains("sekret-pw"), "{said}");

    // The first server's session ends (a dropped connection, a restarted database), and
    // another session takes the lock before it can take it back: it stops, saying so,
    // rather than run beside another server.
    let cluster = crate::postgres::cluster().expect("the cluster the database is on");
    let mut psql = Command::new(cluster.bin().join("psql"))
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql runs");
    let mut input = psql.stdin.take().expect("stdin is piped");
    writeln!(
        input,
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND pid <> pg_backend_pid(); \
         SELECT pg_advisory_lock({});",
        0x7761_7370_7365_7276_i64
    )
    .expect("psql reads");
    input.flush().expect("psql reads");
    let status = first.wait_for_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the first server went on: {status:?}\n{}",
        first.log()
    );
    assert!(
        first.log().contains("was taken by another `wasp serve`"),
        "{}",
        first.log()
    );
    drop(input);
    let _ = psql.wait();
}
