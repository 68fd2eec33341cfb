//! `circle-export`: the old databases into one verified archive, and back
//! onto the new hosts.
// Doc comments here are clap's --help text: `[mongo]` is an ha.toml
// section, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use circle_export::{ExportSpec, Meter, MongoSource, RestoreSpec};
use circle_ha::cli;
use circle_ha::exit::Exit;
use circle_ha::export;
use circle_ha::output::{print, usage};
use circle_ha::progress::ProgressBar;
use clap::{Args, Parser, Subcommand};
use ha_config::HaConfig;

/// The long `--help` text.
const LONG_ABOUT: &str = "Exports the old Services machine's databases into one archive and
restores it onto the new hosts — the outage window of the runbook.

  circle-export export --mongo-uri mongodb://localhost:27017 \\
      --pg-uri env:OLD_PG_URI --encryption-keys /data/circle/circleci-encryption-keys \\
      --out circle-export.tar.zst
  circle-export verify circle-export.tar.zst
  circle-export restore circle-export.tar.zst --config ha.toml

The archive (.tar, .tar.gz or .tar.zst, by its name) holds manifest.json
(versions, every file's size and SHA-256, every collection's document
count, every table's row count and row digest), mongo/<db>/<collection>.bson and
.metadata.json in mongodump's layout (mongorestore --dir reads it; a
view is its .metadata.json alone),
postgres/<db>.sql per database (plain SQL without owners or privileges,
restorable with psql; restore loads it through the protocol, statement
by statement, against an allow-list), encryption-keys/ and vault-data/. It is written
0600 and appears under its name only when complete. A .tar.zst starts a
zstd frame at every member of 1 MiB or more and ends with an index of
them in a skippable frame: zstd and tar --zstd read it as usual, and
restore loads those PostgreSQL databases in parallel, each read straight
from its place in the archive.

The MongoDB source may be the old machine's 3.6 itself: the handshake's
wire version picks the reader (the driver for 4.4 and later, circle-export's
own for 3.6 to 4.2), and the progress names it. Each collection's documents
are copied as the server sent them and their number is checked against an
exact count on the server; a view is kept as its definition.

restore reads the archive once. It verifies the manifest and the MongoDB
part, refuses targets that hold other data unless --drop, then loads each
PostgreSQL database while its part is still being read, in one
transaction committed only once that part matched the manifest (SHA-256,
row counts): nothing becomes visible before its own part is verified, a
damaged part is rolled back, and the parts verified before it stay
restored (the error lists both). A collection whose part is damaged is
left out (nothing of it is written) and the other collections are
restored. A restore killed half-way leaves no
database half-done. Re-running skips what is complete (same counts),
builds indexes a stopped run did not get to, and resumes a collection it
had begun (documents already there and identical count as restored). A
replica-set failover mid-restore is waited out (--failover-wait). It also
takes the circleci_export.tar.gz of CircleCI's own circle-database-export
script (verified whole before anything is written, as is --dry-run).
Targets come from --mongo-uri/--pg-uri or from ha.toml: [mongo] as
circle-admin, [postgres] as the app role (which owns the databases
pg-provision made). A database missing on the target is created, owned by
the restoring role, if that role may (CREATEDB); otherwise restore says so
before writing anything.

transfer does both at once, from the old machine straight to the new
hosts, with the archive written alongside as the record of what moved:

  circle-export transfer --mongo-uri mongodb://localhost:27017 \\
      --pg-uri env:OLD_PG_URI --config ha.toml --out circle-export.tar.zst

Every target is checked first, as restore checks it. Each PostgreSQL
database is loaded while pg_dump still writes it, in one transaction
committed only once the dump finished whole; each MongoDB collection is
loaded once dumped. Killed at any point, no database is left
half-committed, and the same command again finishes the job (what is
complete is skipped: changed 0 on a second run).

A cutover in two steps keeps the outage as short as what changed: days
ahead, with the old services running, transfer --live (the pre-copy; its
record goes beside the archive, <out>.state.json); in the window, with
the old services stopped, the same command with --final compares the
old servers with the new ones and moves only what differs (documents,
rows, indexes, sequences), then checks the targets equal the sources:

  circle-export transfer --live  --mongo-uri … --pg-uri env:OLD_PG_URI \\
      --config ha.toml --out circle-precopy.tar.zst
  circle-export transfer --final --mongo-uri … --pg-uri env:OLD_PG_URI \\
      --config ha.toml --out circle-precopy.tar.zst [--dry-run]

Seal the archive (it holds the encryption keys and every user's data):
--encrypt-to age1… (repeatable; the public half of an age-keygen identity)
or --passphrase env:NAME writes it as one age file (c2sp.org/age; name it
….tar.zst.age); restore and verify open it with --identity file:key.txt
or --passphrase. A sealed archive is authenticated: restore reads it
through once before writing anything, and one changed byte anywhere
refuses it. age -d -i key.txt reads it too. Restoring an archive that is
not sealed works, with a warning: its checksums prove it whole, not who
wrote it.

  age-keygen -o restore-key.txt     # on the new hosts; keep it 0600
  circle-export export … --encrypt-to age1… --out circle-export.tar.zst.age
  circle-export restore circle-export.tar.zst.age --identity file:restore-key.txt \\
      --config ha.toml

On a terminal a progress bar shows bytes done, bytes/s and the time left;
--json prints only the result.

URIs holding a password are never accepted on the command line: pass
env:NAME or file:PATH. MongoDB sources the driver cannot read (the old
embedded 3.x) are exported from a mongodump directory: --mongo-dump DIR.

Exit codes: 0 success; 1 failure (nothing restored from a damaged part
of the archive, nothing into an occupied target); 2 bad usage (also: a
sealed archive without --identity/--passphrase); 3 verify found damage,
restore found counts that differ, or a sealed archive does not open with
the key given or was changed (nothing written).";

/// Exports the old databases into one verified archive and restores it.
#[derive(Debug, Parser)]
#[command(version, long_about = LONG_ABOUT, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dump MongoDB and PostgreSQL (in parallel) into one archive.
    Export(ExportArgs),
    /// Check an archive offline: every checksum and count. Exit 3 listing
    /// every problem.
    Verify(VerifyArgs),
    /// Verify an archive completely, then restore it onto the new hosts.
    Restore(RestoreArgs),
    /// Move the old databases straight into the new hosts, writing the
    /// archive alongside: each PostgreSQL database is loaded while pg_dump
    /// still writes it (committed once the dump finished whole), each
    /// MongoDB collection once dumped.
    Transfer(TransferArgs),
}

// `circle-export export`'s arguments (no doc comment: clap would take it
// for the subcommand's about, which the variant's comment gives).
#[derive(Debug, Args)]
struct ExportArgs {
    /// The archive to write: .tar, .tar.gz or .tar.zst (multithreaded).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    sources: Sources,
    #[command(flatten)]
    seal: SealArgs,
    /// A mongodump directory instead of --mongo-uri
    /// (DB/COLLECTION.bson), for a server this machine cannot reach.
    #[arg(long, value_name = "DIR", conflicts_with = "mongo_uri")]
    mongo_dump: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// Reach every source and list what would be exported, with an
    /// estimate of its size; write nothing.
    #[arg(long)]
    dry_run: bool,
}

// `circle-export verify`'s arguments (no doc comment: clap would take it
// for the subcommand's about, which the variant's comment gives).
#[derive(Debug, Args)]
struct VerifyArgs {
    /// The archive.
    archive: PathBuf,
    #[command(flatten)]
    unseal: UnsealArgs,
    /// Print one JSON object on stdout instead of text on stderr.
    #[arg(long)]
    json: bool,
}

// `circle-export restore`'s arguments (no doc comment: clap would take it
// for the subcommand's about, which the variant's comment gives).
#[derive(Debug, Args)]
struct RestoreArgs {
    /// The archive (circle-export's, or circleci_export.tar.gz).
    archive: PathBuf,
    #[command(flatten)]
    unseal: UnsealArgs,
    /// The MongoDB target (default: the mongo section of --config as
    /// circle-admin).
    #[arg(long, value_name = "URI|REF")]
    mongo_uri: Option<String>,
    /// The PostgreSQL target (default: the postgres section of --config as the
    /// app role).
    #[arg(long, value_name = "URI|REF")]
    pg_uri: Option<String>,
    /// ha.toml, for targets not given as URIs.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replace collections and database objects the target already
    /// holds. Not needed to finish an interrupted restore: a MongoDB
    /// collection holding fewer documents than the archive, every one
    /// of them the archive's, resumes (other data is refused), and a
    /// PostgreSQL database is committed whole or not at all.
    #[arg(long)]
    drop: bool,
    /// Verify the archive and check the targets; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// When the MongoDB replica set loses its primary mid-restore (a
    /// failover), wait this long for a new one, then send the cut
    /// batch again; past it, stop with exit 1 and say so (a rerun
    /// resumes).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    failover_wait: u64,
    #[command(flatten)]
    common: Common,
}

// `circle-export transfer`'s arguments (no doc comment: clap would take it
// for the subcommand's about, which the variant's comment gives).
#[derive(Debug, Args)]
struct TransferArgs {
    /// The archive written alongside, the verified record of what was
    /// moved: .tar, .tar.gz or .tar.zst.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    sources: Sources,
    #[command(flatten)]
    seal: SealArgs,
    /// The MongoDB target (default: the mongo section of --config as
    /// circle-admin).
    #[arg(long, value_name = "URI|REF")]
    to_mongo_uri: Option<String>,
    /// The PostgreSQL target (default: the postgres section of --config
    /// as the app role).
    #[arg(long, value_name = "URI|REF")]
    to_pg_uri: Option<String>,
    /// ha.toml, for targets not given as URIs.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replace collections and database objects the targets already
    /// hold. Not needed to finish an interrupted transfer.
    #[arg(long)]
    drop: bool,
    /// Pre-copy: the old services still run. A MongoDB collection written
    /// to while it is read is copied as read (without --live that fails
    /// the transfer); run --final once the services are stopped.
    #[arg(long, conflicts_with = "final_pass")]
    live: bool,
    /// The cutover's final pass, with the old services stopped: compare
    /// the sources with the targets the pre-copy (a transfer with the same
    /// --out) filled, and move only what differs — documents, rows,
    /// indexes, sequences — then check the targets equal the sources. No
    /// archive is written; the pre-copy's state (--out's
    /// name + .state.json) is read and updated.
    #[arg(
        long = "final",
        id = "final_pass",
        conflicts_with_all = ["drop", "encrypt_to", "passphrase", "encryption_keys", "vault_data", "danger_include_vault_init_output"]
    )]
    final_pass: bool,
    /// Reach the sources, check the targets and list what would move;
    /// write nothing.
    #[arg(long)]
    dry_run: bool,
    /// When the MongoDB replica set loses its primary, wait this long
    /// for a new one.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    failover_wait: u64,
    #[command(flatten)]
    common: Common,
}

/// How export and transfer seal the archive they write.
#[derive(Debug, Args)]
struct SealArgs {
    /// Seal the archive to this age recipient (age1…, the public half of
    /// an `age-keygen` identity; repeat for several): only a matching
    /// identity opens it, and restore proves it unchanged since. The
    /// archive's name then ends in .age (circle-export.tar.zst.age).
    #[arg(long, value_name = "RECIPIENT")]
    encrypt_to: Vec<String>,
    /// Seal the archive with the passphrase held in env:NAME, file:PATH or
    /// cred:NAME instead (scrypt, 2^16).
    #[arg(long, value_name = "REF", conflicts_with = "encrypt_to")]
    passphrase: Option<String>,
}

/// How restore and verify open a sealed archive.
#[derive(Debug, Args)]
struct UnsealArgs {
    /// The identity file that opens a sealed archive (AGE-SECRET-KEY-1…
    /// lines, as age-keygen writes them): file:PATH, env:NAME or
    /// cred:NAME.
    #[arg(long, value_name = "REF")]
    identity: Option<String>,
    /// The passphrase a sealed archive was sealed with: env:NAME,
    /// file:PATH or cred:NAME.
    #[arg(long, value_name = "REF", conflicts_with = "identity")]
    passphrase: Option<String>,
}

/// What export and transfer read from the old machine.
#[derive(Debug, Args)]
struct Sources {
    /// The MongoDB source (3.6 and later: 3.6 to 4.2 are read by
    /// circle-export's own reader, chosen from the handshake; SCRAM-SHA-1
    /// when the URI names a user): a URI without password, or env:NAME /
    /// file:PATH holding one.
    #[arg(long, value_name = "URI|REF")]
    mongo_uri: Option<String>,
    /// Only these MongoDB databases (default: all but admin, local,
    /// config).
    #[arg(long, value_name = "DB,...", value_delimiter = ',')]
    mongo_databases: Vec<String>,
    /// The PostgreSQL source: a URI without password, or env:NAME /
    /// file:PATH holding one.
    #[arg(long, value_name = "URI|REF")]
    pg_uri: Option<String>,
    /// Only these PostgreSQL databases (default: all but postgres and
    /// templates).
    #[arg(long, value_name = "DB,...", value_delimiter = ',')]
    pg_databases: Vec<String>,
    /// Run pg_dump through this command, words separated by spaces (no
    /// shell, no quoting): where the old Services machine has it, in its
    /// postgres container, e.g. "docker exec -i -e PGPASSWORD postgres".
    /// The connection goes as one --dbname argument (never the password);
    /// the password as PGPASSWORD in the command's environment, which
    /// `docker exec` passes in only with `-e PGPASSWORD`. The archive
    /// records that pg_dump's version; restore translates what pg_dump 9.5
    /// writes for PostgreSQL 12 and later.
    #[arg(long, value_name = "COMMAND", requires = "pg_uri")]
    pg_dump_command: Option<String>,
    /// The encryption-keys directory to include in the archive.
    #[arg(long, value_name = "DIR")]
    encryption_keys: Option<PathBuf>,
    /// The old contexts-Vault data directory to include in the archive.
    /// Files in it holding Vault's init output (unseal keys, root token —
    /// CircleCI's Vault container writes one) or a token (client-token,
    /// root-token) are left out, and the report says so.
    #[arg(long, value_name = "DIR")]
    vault_data: Option<PathBuf>,
    /// Keep files of --vault-data that hold Vault init output: whoever
    /// holds the archive can then unseal the old Vault and read every
    /// context secret.
    #[arg(long)]
    danger_include_vault_init_output: bool,
}

#[derive(Debug, Args)]
struct Common {
    /// Collections and databases handled at once (a transfer loads up to N
    /// databases and N collections at once, into their two servers).
    #[arg(long, value_name = "N", default_value_t = 4)]
    parallel: usize,
    /// Where pg_dump lives (default: PATH, else the newest
    /// /usr/lib/postgresql/N/bin — also when PATH's are Debian's
    /// pg_wrapper, which would run that same binary).
    #[arg(long, value_name = "DIR")]
    pg_bin_dir: Option<PathBuf>,
    /// Print one JSON object on stdout (no progress) instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli: Cli = circle_ha::cli::parse("circle-export");
    let json = match &cli.command {
        Command::Export(ExportArgs { common, .. })
        | Command::Restore(RestoreArgs { common, .. })
        | Command::Transfer(TransferArgs { common, .. }) => common.json,
        Command::Verify(VerifyArgs { json, .. }) => *json,
    };
    cli::run_main_interruptible("circle-export", json, run(cli))
}

/// Progress on stderr — the stage lines, and a bar on a terminal or
/// periodic lines elsewhere — unless `silent` (`--json`, `--quiet`).
fn progress_bar(meter: &Meter, silent: bool) -> ProgressBar {
    ProgressBar::start(
        "circle-export",
        meter.clone(),
        std::io::stderr().is_terminal(),
        silent,
    )
}

use circle_ha::output::warn;

async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Export(args) => export(args).await,
        Command::Verify(args) => verify(args).await,
        Command::Restore(args) => restore(args).await,
        Command::Transfer(args) => transfer(args).await,
    }
}

/// `circle-export export`: the sources dumped into one archive (or, with
/// `--dry-run`, what would be).
async fn export(args: ExportArgs) -> anyhow::Result<Exit> {
    let ExportArgs {
        out,
        sources,
        seal,
        mongo_dump,
        common,
        dry_run,
    } = args;
    let mut warnings = Vec::new();
    let sealing = export::sealing(
        &out,
        &seal.encrypt_to,
        seal.passphrase.as_deref(),
        &mut warnings,
    )?;
    let Sources {
        mongo_uri,
        mongo_databases,
        pg_uri,
        pg_databases,
        pg_dump_command,
        encryption_keys,
        vault_data,
        danger_include_vault_init_output,
    } = sources;
    let (mongo_connection, pg) = connect_sources(
        mongo_uri.as_deref(),
        pg_uri.as_deref(),
        dump_argv(pg_dump_command.as_deref()),
        &common,
        &mut warnings,
    )
    .await?;
    if mongo_connection.is_none() && mongo_dump.is_none() && pg.is_none() {
        return Err(usage(
            "--mongo-uri",
            ": nothing to export: give --mongo-uri or --mongo-dump, and/or --pg-uri",
        )
        .into());
    }
    warn(&warnings);
    let mongo = match (&mongo_connection, mongo_dump) {
        (Some(reader), _) => Some(MongoSource::Server {
            reader,
            databases: mongo_databases,
        }),
        (None, Some(dir)) => Some(MongoSource::DumpDir(dir)),
        (None, None) => None,
    };
    let meter = Meter::new();
    let spec = ExportSpec {
        mongo,
        postgres: pg.as_ref().map(|client| circle_export::PgSource {
            client,
            databases: pg_databases,
        }),
        encryption_keys,
        vault_data,
        danger_include_vault_init_output,
        out,
        seal: sealing.as_ref(),
        parallel: common.parallel,
        tool: format!("circle-export {}", circle_ha::output::VERSION),
        meter: meter.clone(),
    };
    if dry_run {
        let plan = circle_export::export::plan(&spec).await?;
        return Ok(print(common.json, &plan.to_findings(&spec.out)));
    }
    let bar = progress_bar(&meter, common.json || circle_ha::log::quiet());
    let report = circle_export::export(spec, &|line| bar.line(line)).await?;
    drop(bar);
    Ok(print(common.json, &report.to_findings()))
}

/// `circle-export verify`: the whole archive read back and checked.
async fn verify(args: VerifyArgs) -> anyhow::Result<Exit> {
    let VerifyArgs {
        archive,
        unseal,
        json,
    } = args;
    let mut warnings = Vec::new();
    let unsealing = export::unsealing(
        unseal.identity.as_deref(),
        unseal.passphrase.as_deref(),
        &mut warnings,
    )?;
    warn(&warnings);
    let source = circle_export::archive::Source::open(&archive, unsealing.as_ref())
        .map_err(export::name_key_flags)?;
    if unsealing.is_some() && !source.is_sealed() {
        warn(&[format!(
            "{} is not sealed: --identity/--passphrase was not needed",
            archive.display()
        )]);
    }
    let meter = Meter::new();
    let bar = progress_bar(&meter, json);
    let inspection =
        tokio::task::spawn_blocking(move || circle_export::inspect_metered(&source, None, &meter))
            .await??;
    drop(bar);
    Ok(print(json, &inspection.to_findings(&archive)))
}

/// `circle-export restore`: an archive loaded onto the targets.
async fn restore(args: RestoreArgs) -> anyhow::Result<Exit> {
    let RestoreArgs {
        archive,
        unseal,
        mongo_uri,
        pg_uri,
        config,
        drop,
        dry_run,
        failover_wait,
        common,
    } = args;
    let mut warnings = Vec::new();
    let (mongo, pg) = targets(
        Flags {
            config: config.as_deref(),
            mongo: mongo_uri.as_deref().map(|u| ("--mongo-uri", u)),
            pg: pg_uri.as_deref().map(|u| ("--pg-uri", u)),
        },
        failover_wait,
        &common,
        &mut warnings,
    )
    .await?;
    let unsealing = export::unsealing(
        unseal.identity.as_deref(),
        unseal.passphrase.as_deref(),
        &mut warnings,
    )?;
    warn(&warnings);
    let meter = Meter::new();
    let bar = progress_bar(&meter, common.json || circle_ha::log::quiet());
    let report = circle_export::restore(
        RestoreSpec {
            archive,
            unsealing: unsealing.as_ref(),
            mongo: mongo.as_ref(),
            postgres: pg.as_ref(),
            drop,
            dry_run,
            parallel: common.parallel,
            meter,
            failover_wait: std::time::Duration::from_secs(failover_wait),
        },
        &|line| bar.line(line),
    )
    .await
    .map_err(export::name_key_flags)?;
    std::mem::drop(bar);
    Ok(print(common.json, &report.to_findings()))
}

/// `circle-export transfer`: the sources copied straight to the targets,
/// with the archive written on the way.
async fn transfer(args: TransferArgs) -> anyhow::Result<Exit> {
    let TransferArgs {
        out,
        sources,
        seal,
        to_mongo_uri,
        to_pg_uri,
        config,
        drop,
        live,
        final_pass,
        dry_run,
        failover_wait,
        common,
    } = args;
    let mut warnings = Vec::new();
    let Sources {
        mongo_uri,
        mongo_databases,
        pg_uri,
        pg_databases,
        pg_dump_command,
        encryption_keys,
        vault_data,
        danger_include_vault_init_output,
    } = sources;
    let sealing = export::sealing(
        &out,
        &seal.encrypt_to,
        seal.passphrase.as_deref(),
        &mut warnings,
    )?;
    // The flag, else [export].pg_dump_command of --config.
    let pg_dump_command = match (dump_argv(pg_dump_command.as_deref()), &config) {
        (Some(argv), _) => Some(argv),
        (None, Some(path)) => HaConfig::load(path)?.export_pg_dump_command()?,
        (None, None) => None,
    };
    let (source_mongo, source_pg) = connect_sources(
        mongo_uri.as_deref(),
        pg_uri.as_deref(),
        pg_dump_command,
        &common,
        &mut warnings,
    )
    .await?;
    let (target_mongo, target_pg) = targets(
        Flags {
            config: config.as_deref(),
            mongo: to_mongo_uri.as_deref().map(|u| ("--to-mongo-uri", u)),
            pg: to_pg_uri.as_deref().map(|u| ("--to-pg-uri", u)),
        },
        failover_wait,
        &common,
        &mut warnings,
    )
    .await?;
    let mongo = pair(
        source_mongo.as_ref(),
        target_mongo.as_ref(),
        ("MongoDB", "--mongo-uri", "--to-mongo-uri"),
        to_mongo_uri.is_some(),
    )?
    .map(|(source, target)| circle_export::TransferMongo {
        source,
        databases: mongo_databases,
        target,
    });
    let postgres = pair(
        source_pg.as_ref(),
        target_pg.as_ref(),
        ("PostgreSQL", "--pg-uri", "--to-pg-uri"),
        to_pg_uri.is_some(),
    )?
    .map(|(source, target)| circle_export::TransferPostgres {
        source,
        databases: pg_databases,
        target,
    });
    if mongo.is_none() && postgres.is_none() {
        return Err(usage(
            "--mongo-uri",
            ": nothing to transfer: give --mongo-uri and/or --pg-uri, and the targets",
        )
        .into());
    }
    warn(&warnings);
    let meter = Meter::new();
    let bar = progress_bar(&meter, common.json || circle_ha::log::quiet());
    if final_pass {
        let report = circle_export::final_pass(
            circle_export::FinalSpec {
                mongo,
                postgres,
                state: circle_export::cutover::state_path(&out),
                dry_run,
                parallel: common.parallel,
                failover_wait: Duration::from_secs(failover_wait),
            },
            &|line| bar.line(line),
        )
        .await?;
        std::mem::drop(bar);
        return Ok(print(common.json, &report.to_findings()));
    }
    let report = circle_export::transfer(
        circle_export::TransferSpec {
            mongo,
            postgres,
            encryption_keys,
            vault_data,
            danger_include_vault_init_output,
            out,
            seal: sealing.as_ref(),
            drop,
            live,
            dry_run,
            parallel: common.parallel,
            meter,
            failover_wait: Duration::from_secs(failover_wait),
            tool: format!("circle-export {}", circle_ha::output::VERSION),
        },
        &|line| bar.line(line),
    )
    .await?;
    std::mem::drop(bar);
    Ok(print(common.json, &report.to_findings()))
}

/// A source and its target for a transfer: both, or neither. A source
/// without a target, or a target flag without a source, is a usage error
/// naming the missing flag; a target that only `--config` gives, with no
/// source of its kind, is left unused. `flags` is (what, the source flag,
/// the target flag).
fn pair<S, T>(
    source: Option<S>,
    target: Option<T>,
    flags: (&str, &'static str, &'static str),
    target_flag_given: bool,
) -> anyhow::Result<Option<(S, T)>> {
    let (what, source_flag, target_flag) = flags;
    match (source, target) {
        (Some(source), Some(target)) => Ok(Some((source, target))),
        (Some(_), None) => Err(usage(
            target_flag,
            format!(": a {what} source needs a target: give {target_flag} or --config"),
        )
        .into()),
        (None, Some(_)) if target_flag_given => Err(usage(
            source_flag,
            format!(": {target_flag} needs a {what} source: give {source_flag}"),
        )
        .into()),
        _ => Ok(None),
    }
}

/// Target flags: `--config`, and the URI flags with their names.
struct Flags<'f> {
    config: Option<&'f std::path::Path>,
    mongo: Option<(&'static str, &'f str)>,
    pg: Option<(&'static str, &'f str)>,
}

/// The targets: from ha.toml (`[mongo]` as circle-admin, `[postgres]` as
/// the app role), each overridden by its URI flag. The driver's own wait
/// for a primary is part of the failover wait: never longer than it.
async fn targets(
    flags: Flags<'_>,
    failover_wait: u64,
    common: &Common,
    warnings: &mut Vec<String>,
) -> anyhow::Result<(
    Option<circle_export::MongoConnection>,
    Option<circle_export::PgClient>,
)> {
    let here = PathBuf::from(".");
    let (mut mongo, mut pg_conn) = (None, None);
    let selection =
        circle_export::failover::Failover::server_selection(Duration::from_secs(failover_wait));
    if let Some(path) = flags.config {
        let config = HaConfig::load(path)?;
        let targets = config.restore_targets(&cli::env_var, warnings)?;
        mongo = targets.mongo.map(|t| t.connect(selection)).transpose()?;
        pg_conn = targets.postgres;
    }
    if let Some((flag, uri)) = flags.mongo {
        let uri = ha_config::uri_from_flag(flag, uri, &cli::env_var, &here, warnings)?;
        mongo = Some(circle_export::mongo_from_uri(&uri, selection).await?);
    }
    if let Some((flag, uri)) = flags.pg {
        let uri = ha_config::uri_from_flag(flag, uri, &cli::env_var, &here, warnings)?;
        pg_conn = Some(export::pg_conn(flag, &uri, warnings)?);
    }
    let pg = match pg_conn {
        Some(conn) => Some(export::pg_client(
            conn,
            export::pg_bin_dir(common.pg_bin_dir.clone()),
        )?),
        None => None,
    };
    Ok((mongo, pg))
}

/// `--pg-dump-command`'s words: split on spaces, no shell, no quoting.
fn dump_argv(flag: Option<&str>) -> Option<Vec<String>> {
    flag.map(|words| words.split_whitespace().map(str::to_owned).collect())
}

/// The sources of an export or a transfer, from their URI flags.
async fn connect_sources(
    mongo_uri: Option<&str>,
    pg_uri: Option<&str>,
    pg_dump_command: Option<Vec<String>>,
    common: &Common,
    warnings: &mut Vec<String>,
) -> anyhow::Result<(
    Option<circle_export::MongoReader>,
    Option<circle_export::PgClient>,
)> {
    let here = PathBuf::from(".");
    let mongo = match mongo_uri {
        Some(uri) => {
            let uri = ha_config::uri_from_flag("--mongo-uri", uri, &cli::env_var, &here, warnings)?;
            Some(circle_export::MongoReader::from_uri(&uri, Duration::from_secs(30)).await?)
        }
        None => None,
    };
    let pg = match pg_uri {
        Some(uri) => {
            let uri = ha_config::uri_from_flag("--pg-uri", uri, &cli::env_var, &here, warnings)?;
            let conn = export::pg_conn("--pg-uri", &uri, warnings)?;
            let client = export::pg_client(conn, export::pg_bin_dir(common.pg_bin_dir.clone()))?;
            Some(match pg_dump_command {
                Some(argv) => client
                    .with_dump_command(argv)
                    .map_err(|e| usage("--pg-dump-command", format!(": {e}")))?,
                None => client,
            })
        }
        None => None,
    };
    Ok((mongo, pg))
}
