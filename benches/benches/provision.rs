//! pg-provision vs a sequential `psql -f` script: the eight runbook
//! databases, their extensions and the app role, on one lab PostgreSQL with
//! fsync on. Each round starts from an empty server (databases and role
//! dropped); the median of the rounds is reported with the ratio.
//!
//! Run: `cargo bench -p ha-benches --bench provision` (ROUNDS=n to change
//! the number of rounds, default 7).

use std::process::Command;
use std::time::{Duration, Instant};

use ha_lab::{LabPki, Postgres, PostgresOptions, Toolbox};
use pg_provision::{Desired, Login, Server, SslMode, default_databases};
use secrecy::SecretString;

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let pki = LabPki::new().expect("lab CA");
    let pg = Postgres::start(
        &Toolbox::discover(std::env::vars_os()),
        &pki,
        PostgresOptions {
            durable: true,
            ..PostgresOptions::default()
        },
    )
    .expect("lab PostgreSQL (run `cargo xtask install` first)");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = Server {
        host: "localhost".to_owned(),
        hostaddr: Some("127.0.0.1".parse().expect("address")),
        port: pg.port(),
        sslmode: SslMode::VerifyFull,
        ca: Some((
            std::fs::read(pg.ca_file()).expect("CA"),
            pg.ca_file().display().to_string(),
        )),
        connect_timeout: Duration::from_secs(30),
    };
    let admin = Login {
        user: pg.superuser().to_owned(),
        password: pg.superuser_password().clone(),
    };
    let desired = Desired {
        app_role: "circle".to_owned(),
        app_password: SecretString::from("bench-app-password"),
        databases: default_databases(),
    };

    let script = baseline_script(&desired);
    let script_path =
        std::env::temp_dir().join(format!("provision-bench-{}.sql", std::process::id()));
    std::fs::write(&script_path, &script).expect("script");

    let mut tool = Vec::new();
    let mut baseline = Vec::new();
    for round in 0..rounds {
        reset(&pg, &desired);
        let started = Instant::now();
        runtime.block_on(async {
            let observed = pg_provision::observe(&server, &admin, "postgres", &desired)
                .await
                .expect("observe");
            let plan = pg_provision::plan(&desired, &observed);
            assert_eq!(plan.steps.len(), 18);
            pg_provision::apply(&plan, &desired, &server, &admin, "postgres")
                .await
                .expect("apply");
        });
        tool.push(started.elapsed());

        reset(&pg, &desired);
        let started = Instant::now();
        let output = Command::new(pg.bin_dir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&script_path)
            .env_clear()
            .envs(pg.libpq_env("postgres").expect("env"))
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        baseline.push(started.elapsed());
        eprintln!(
            "round {}: pg-provision {:.0} ms, psql -f {:.0} ms",
            round + 1,
            ms(tool[round]),
            ms(baseline[round])
        );
    }
    let _ = std::fs::remove_file(&script_path);
    let (tool, baseline) = (median(&mut tool), median(&mut baseline));
    println!(
        "provision (8 databases, 9 extensions, 1 role; {} on {}; fsync on; {rounds} rounds, median):\n  \
         pg-provision (observe+plan+apply, verify-full TLS) {:>7.0} ms\n  \
         psql -f sequential script (verify-full TLS)        {:>7.0} ms\n  \
         ratio baseline/tool: {:.2}x",
        pg.version(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        ms(tool),
        ms(baseline),
        baseline.as_secs_f64() / tool.as_secs_f64(),
    );
}

/// What an operator would write by hand: the same statements, one after the
/// other, one `\connect` per database for its extensions.
fn baseline_script(desired: &Desired) -> String {
    let mut script = String::from("CREATE ROLE circle LOGIN PASSWORD 'bench-app-password';\n");
    for database in &desired.databases {
        script.push_str(&format!(
            "CREATE DATABASE \"{}\" OWNER circle TEMPLATE template0 ENCODING 'UTF8';\n",
            database.name
        ));
    }
    for database in &desired.databases {
        script.push_str(&format!("\\connect \"{}\"\n", database.name));
        for extension in &database.extensions {
            script.push_str(&format!(
                "CREATE EXTENSION IF NOT EXISTS \"{extension}\";\n"
            ));
        }
    }
    script
}

fn reset(pg: &Postgres, desired: &Desired) {
    // One statement per psql call: DROP DATABASE refuses to run inside the
    // transaction `-c` wraps several statements in.
    let mut statements: Vec<String> = desired
        .databases
        .iter()
        .map(|d| format!("DROP DATABASE IF EXISTS \"{}\"", d.name))
        .collect();
    statements.push("DROP ROLE IF EXISTS circle".to_owned());
    for statement in statements {
        let status = Command::new(pg.bin_dir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &statement])
            .env_clear()
            .envs(pg.libpq_env("postgres").expect("env"))
            .status()
            .expect("psql");
        assert!(status.success(), "reset failed at {statement}");
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
