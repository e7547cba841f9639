//! Accounts from a real PostgreSQL server (started by the test: scratch directory, user
//! `nobody`, free port) while `sipgw run` serves sipp phones: a new account, a changed
//! password and a deleted account take effect within the refresh interval; a query returning
//! a duplicate username is refused and the last good snapshot stays; the database stopped and
//! restarted while the gateway runs; a change announced by NOTIFY takes effect at once; a
//! start without the database runs from the cache file, and without a cache names the server.
//!
//! Needs root, PostgreSQL 15 and sipp (`./scripts/install-deps`); a missing one fails the test
//! with that message.

mod support;

use std::time::{Duration, Instant};

use support::live::Gateway;
use support::pg::Postgres;
use support::*;

/// Register `user` with `password` until it succeeds (or `limit` passes); whether it did.
fn registers_within(gw: &Gateway, user: &str, password: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if gw.phone("register.xml", user, password, 1, 2) == Some(0) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn config(pg: &Postgres, refresh: u32, notify: &str) -> String {
    format!(
        "[auth]\nrealm = \"sipgw.test\"\nmax_retry = 0\naccount_budget = 0\n\n[database]\n\
         kind = \"postgres\"\nurl = \"{}\"\n\
         query = \"SELECT username AS name, password FROM accounts UNION ALL \
         SELECT username AS name, password FROM extra ORDER BY name\"\n\
         refresh = {refresh}\n{notify}cache = \"accounts-cache.toml\"\n",
        pg.url()
    )
}

fn schema(pg: &Postgres) {
    pg.sql("CREATE TABLE accounts (username text PRIMARY KEY, password text NOT NULL)");
    pg.sql("CREATE TABLE extra (username text PRIMARY KEY, password text NOT NULL)");
    for i in 0..3 {
        let (u, p) = user(i);
        pg.sql(&format!("INSERT INTO accounts VALUES ('{u}', '{p}')"));
    }
}

#[test]
fn accounts_follow_the_database_and_survive_its_failures() {
    let mut pg = Postgres::start("pg-accounts");
    schema(&pg);
    let gw = Gateway::start_with_accounts("db-accounts", 1, "", &config(&pg, 1, ""));
    let _softswitch = gw.softswitch("softswitch_register.xml", 1000);
    let (u0, p0) = user(0);
    assert!(
        registers_within(&gw, &u0, &p0, Duration::ZERO),
        "{}",
        gw.log()
    );
    let cache = gw.dir.0.join("accounts-cache.toml");
    assert!(
        std::fs::read_to_string(&cache).unwrap().contains(&u0),
        "the cache holds the accounts"
    );

    // A new account, a changed password, a deleted account: within the refresh interval.
    let (u5, p5) = user(5);
    let (u1, p1) = user(1);
    let (u2, p2) = user(2);
    pg.sql(&format!("INSERT INTO accounts VALUES ('{u5}', '{p5}')"));
    pg.sql(&format!(
        "UPDATE accounts SET password = 'changed' WHERE username = '{u1}'"
    ));
    pg.sql(&format!("DELETE FROM accounts WHERE username = '{u2}'"));
    assert!(
        registers_within(&gw, &u5, &p5, Duration::from_secs(5)),
        "new account: {}",
        gw.log()
    );
    assert!(
        registers_within(&gw, &u1, "changed", Duration::from_secs(5)),
        "new password"
    );
    assert_ne!(
        gw.phone("register.xml", &u1, &p1, 1, 2),
        Some(0),
        "old password refused"
    );
    assert_ne!(
        gw.phone("register.xml", &u2, &p2, 1, 2),
        Some(0),
        "deleted account refused"
    );
    assert!(gw.stat("database_swaps") >= 1);

    // Garbage: the query now returns a username twice. The snapshot stays (an account added
    // at the same time is not seen), the failure is counted and the row named.
    let failures = gw.stat("database_failures");
    let (u6, p6) = user(6);
    pg.sql(&format!("INSERT INTO extra VALUES ('{u0}', 'dup')"));
    pg.sql(&format!("INSERT INTO accounts VALUES ('{u6}', '{p6}')"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.stat("database_failures") == failures {
        assert!(
            Instant::now() < deadline,
            "the duplicate was not refused: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gw.log()
            .contains("a password account with this name already exists"),
        "{}",
        gw.log()
    );
    assert!(gw.log().contains("row #"), "{}", gw.log());
    assert!(
        registers_within(&gw, &u0, &p0, Duration::ZERO),
        "old snapshot in force"
    );
    assert_ne!(
        gw.phone("register.xml", &u6, &p6, 1, 2),
        Some(0),
        "not in the old snapshot"
    );
    pg.sql(&format!("DELETE FROM extra WHERE username = '{u0}'"));
    assert!(
        registers_within(&gw, &u6, &p6, Duration::from_secs(5)),
        "garbage gone: {}",
        gw.log()
    );

    // The database stopped: the gateway keeps serving its snapshot; restarted: changes again.
    pg.stop();
    let failures = gw.stat("database_failures");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        gw.stat("database_failures") > failures,
        "failed reads counted"
    );
    assert!(
        registers_within(&gw, &u5, &p5, Duration::ZERO),
        "served while the database is down"
    );
    let logged = gw.log().matches("accounts not refreshed").count();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        gw.log().matches("accounts not refreshed").count(),
        logged,
        "logged once per change of state"
    );
    pg.restart();
    let (u7, p7) = user(7);
    pg.sql(&format!("INSERT INTO accounts VALUES ('{u7}', '{p7}')"));
    assert!(
        registers_within(&gw, &u7, &p7, Duration::from_secs(10)),
        "after the restart: {}",
        gw.log()
    );
    assert!(gw.log().contains("database readable again"), "{}", gw.log());

    // With the database down at start: the cache file (the last good snapshot) serves.
    pg.stop();
    let cached = Gateway::start_with_accounts(
        "db-from-cache",
        1,
        "",
        &config(&pg, 1, "").replace(
            "cache = \"accounts-cache.toml\"",
            &format!("cache = \"{}\"", cache.display()),
        ),
    );
    let _softswitch2 = cached.softswitch("softswitch_register.xml", 10);
    assert!(
        registers_within(&cached, &u7, &p7, Duration::ZERO),
        "{}",
        cached.log()
    );
    assert!(
        cached.log().contains("starting from the cache"),
        "{}",
        cached.log()
    );
    // And without a cache: a clear error naming the server.
    let dir = Scratch::new("db-nocache");
    let text = format!(
        "[gateway]\nsoftswitch = \"127.0.0.1:5070\"\n\n{}",
        config(&pg, 1, "").replace("cache = \"accounts-cache.toml\"\n", "")
    );
    std::fs::write(dir.0.join("sipgw.toml"), text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipgw"))
        .args(["check", "--config"])
        .arg(dir.0.join("sipgw.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "postgres 127.0.0.1:{}/postgres: cannot connect",
            pg.port
        )) && err.contains("no database.cache"),
        "{err}"
    );
}

#[test]
fn a_notify_applies_a_change_at_once() {
    let pg = Postgres::start("pg-notify");
    schema(&pg);
    // An hour between reads: only the notification can bring the new account in time.
    let gw = Gateway::start_with_accounts(
        "db-notify",
        1,
        "",
        &config(&pg, 3600, "notify = \"sipgw_accounts\"\n"),
    );
    let _softswitch = gw.softswitch("softswitch_register.xml", 10);
    let (u8, p8) = user(8);
    std::thread::sleep(Duration::from_millis(500));
    pg.sql(&format!(
        "INSERT INTO accounts VALUES ('{u8}', '{p8}'); NOTIFY sipgw_accounts"
    ));
    assert!(
        registers_within(&gw, &u8, &p8, Duration::from_secs(3)),
        "{}",
        gw.log()
    );
}

#[test]
fn the_documented_query_serves_phones_and_mapping_gateways() {
    let pg = Postgres::start("pg-doc");
    // The example of docs/configuration.md, "[database]", as written there.
    pg.sql(
        "CREATE TABLE phone (e164 varchar(64) PRIMARY KEY, password varchar(64), locked boolean);
         CREATE TABLE mapping_gateway (name varchar(64) PRIMARY KEY, remote_ips text);
         INSERT INTO phone VALUES ('1001', 'pw1', false), ('1002', 'pw2', true);
         INSERT INTO mapping_gateway VALUES ('carrier-a', '198.18.0.10, 198.18.1.0/24')",
    );
    let query =
        "SELECT e164 AS name, password, NULL AS mode, NULL AS allow FROM phone WHERE NOT locked
UNION ALL
SELECT name, NULL, 'ip', remote_ips FROM mapping_gateway";
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    assert!(
        docs.contains(query),
        "the query in the docs is the one tested"
    );
    let settings = sipgw::config::DatabaseSettings {
        kind: sipgw::config::DatabaseKind::Postgres,
        url: pg.url(),
        query: query.to_owned(),
        refresh: Duration::from_secs(60),
        notify: None,
        cache: None,
    };
    let hashes = [sipgw::digest::Hash::Md5];
    let (rows, store) = sipgw::runtime::database::fetch(&settings, "sipgw", &hashes).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(store.by_username(b"1001").is_some());
    assert!(
        store.by_username(b"1002").is_none(),
        "a locked phone is left out"
    );
    let (_, mode) = store
        .by_address("198.18.1.77:5060".parse().unwrap())
        .unwrap();
    assert_eq!(mode, sipgw::credentials::AuthMode::Ip);
    assert!(store.by_address("198.18.0.10:1".parse().unwrap()).is_some());
    // An unknown column is named.
    let bad = sipgw::config::DatabaseSettings {
        query: "SELECT e164 AS name, password, locked FROM phone".to_owned(),
        ..settings
    };
    let e = sipgw::runtime::database::fetch(&bad, "sipgw", &hashes)
        .unwrap_err()
        .to_string();
    assert!(e.contains("column \"locked\" is not one of"), "{e}");
}
