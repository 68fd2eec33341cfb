//! Reading an archive back: every entry hashed and counted (and, for a
//! restore, unpacked), then compared with the manifest. Also recognises the
//! archive CircleCI's own `circle-database-export` script writes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Component, Path};

use sha2::{Digest as _, Sha256};

use crate::count::{BsonCounter, CopyCounter, RowDigest};
use crate::error::Error;
use crate::manifest::{
    CollectionEntry, DatabaseEntry, FileEntry, MANIFEST_PATH, Manifest, TableEntry, bson_path,
    sql_path,
};
use crate::meter::{Meter, Stage};
use crate::spool::{create_parents, hex};
use crate::sqlscan::Scanner;
use crate::sqlsplit::cut;

/// The vendor script's top directory.
pub const VENDOR_ROOT: &str = "circleci_export/";
/// Where the vendor script puts the mongodump output.
pub const VENDOR_MONGO: &str = "circleci_export/circleci-mongo-export/";
/// The vendor script's `pg_dumpall -c` output.
pub const VENDOR_PG: &str = "circleci_export/circleci-pg-export/circle.sql";

/// Whose archive it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Written by `circle-export export`: manifest with checksums.
    Ours,
    /// Written by CircleCI's `circle-database-export`: no checksums, so
    /// only its framing and counts can be checked.
    Vendor,
}

/// What reading an archive found.
#[derive(Debug)]
pub struct Inspection {
    /// Whose archive.
    pub layout: Layout,
    /// The manifest (for a vendor archive: one built from what was read).
    pub manifest: Manifest,
    /// Every problem; empty when the archive is intact.
    pub problems: Vec<String>,
    /// What the operator should know of an intact archive: it carries
    /// Vault init output (unseal keys, root token).
    pub warnings: Vec<String>,
    /// Bytes read (uncompressed).
    pub bytes: u64,
}

/// Rows per table per `\connect` section of a `pg_dumpall` script.
type Sections = BTreeMap<String, BTreeMap<String, u64>>;

#[derive(Debug, Default)]
struct Seen {
    size: u64,
    sha256: String,
    documents: Option<Result<u64, String>>,
    rows: Option<Result<BTreeMap<String, u64>, String>>,
    sections: Option<Result<Sections, String>>,
    /// Each table's row digest (our own dumps), or per section (the
    /// vendor's script).
    digests: BTreeMap<String, RowDigest>,
    section_digests: BTreeMap<String, BTreeMap<String, RowDigest>>,
}

/// A member of the archive being unpacked while a loader already reads it
/// (see [`inspect_streaming`]): how far the file is written, and whether
/// the member ended verified (matching the manifest) or damaged.
#[derive(Debug)]
pub(crate) struct Growing {
    /// Where it is unpacked.
    pub(crate) path: std::path::PathBuf,
    state: std::sync::Mutex<GrowState>,
    changed: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct GrowState {
    written: u64,
    /// `Some(true)`: complete and verified; `Some(false)`: damaged (or the
    /// read stopped); `None`: still being unpacked.
    end: Option<bool>,
}

/// What [`Growing::wait_beyond`] found.
pub(crate) enum Grown {
    /// Bytes up to this offset are in the file.
    Until(u64),
    /// The member is complete and verified; nothing past the offset asked.
    Verified,
    /// The member is damaged or the read stopped: it must not be committed.
    Damaged,
}

impl Growing {
    /// A member about to be written at `path`.
    pub(crate) fn new(path: std::path::PathBuf) -> std::sync::Arc<Growing> {
        std::sync::Arc::new(Growing {
            path,
            state: std::sync::Mutex::default(),
            changed: std::sync::Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GrowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `n` more bytes are in the file (flushed).
    pub(crate) fn wrote(&self, n: u64) {
        self.lock().written += n;
        self.changed.notify_all();
    }

    /// Marks the member ended (the first call wins).
    pub(crate) fn end(&self, verified: bool) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(verified);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Whether the member ended damaged (or the read stopped in it).
    pub(crate) fn damaged(&self) -> bool {
        self.lock().end == Some(false)
    }

    /// Blocks until the file holds bytes past `offset`, or the member
    /// ended.
    pub(crate) fn wait_beyond(&self, offset: u64) -> Grown {
        let mut state = self.lock();
        loop {
            match state.end {
                Some(false) => return Grown::Damaged,
                Some(true) if state.written <= offset => return Grown::Verified,
                _ if state.written > offset => return Grown::Until(state.written),
                _ => {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

/// Member `name` of an archive, read on its own (see
/// [`crate::archive::open_member`]) and checked as it passes: SHA-256,
/// size, COPY rows per table and psql meta-commands. At its end they are
/// compared with the manifest, and the reader ends (`Ok(0)`) only when
/// every one matches; otherwise — or on any read error — it fails with
/// `InvalidData` and records why in `verdict`, so that a load fed from it
/// is never committed.
pub(crate) struct VerifyingReader<R> {
    inner: R,
    name: String,
    manifest: std::sync::Arc<Manifest>,
    hasher: Sha256,
    size: u64,
    copy: Option<CopyCounter>,
    psql: Option<Scanner>,
    verdict: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl<R> VerifyingReader<R> {
    /// Checks `inner`, member `name`, against `manifest`; problems found
    /// are written to `verdict`.
    pub(crate) fn new(
        inner: R,
        name: &str,
        manifest: std::sync::Arc<Manifest>,
        verdict: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    ) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            name: name.to_owned(),
            manifest,
            hasher: Sha256::new(),
            size: 0,
            copy: Some(CopyCounter::default()),
            psql: Some(Scanner::new(crate::sqlsplit::Dialect::Own)),
            verdict,
        }
    }

    fn refuse(&self, problems: String) -> std::io::Error {
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(problems.clone());
        std::io::Error::new(std::io::ErrorKind::InvalidData, problems)
    }
}

impl<R: std::io::Read> std::io::Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                return Err(self.refuse(format!(
                    "{}: the archive is truncated or corrupt here: {e}",
                    self.name
                )));
            }
        };
        if n > 0 {
            let chunk = &buf[..n];
            self.hasher.update(chunk);
            self.size += n as u64;
            let listed = self.manifest.file(&self.name).map_or(0, |f| f.size);
            if self.size > listed {
                return Err(self.refuse(format!(
                    "{}: longer than the {listed} bytes the manifest gives it; refused as soon as \
                     it passed them",
                    self.name
                )));
            }
            if let Some(counter) = &mut self.copy {
                counter.feed(chunk);
            }
            if let Some(scanner) = &mut self.psql {
                scanner.feed(chunk);
                if let Some(meta) = scanner.refuses() {
                    return Err(self.refuse(format!("{}: a restore refuses {meta}", self.name)));
                }
            }
            return Ok(n);
        }
        let Some(counter) = self.copy.take() else {
            return Ok(0);
        };
        let seen = Seen {
            size: self.size,
            sha256: hex(&std::mem::take(&mut self.hasher).finalize()),
            documents: None,
            digests: counter.digests(),
            rows: Some(counter.finish()),
            sections: None,
            section_digests: BTreeMap::new(),
        };
        let mut problems = member_problems(&self.manifest, &self.name, &seen);
        for (line, command) in self.psql.take().map(Scanner::finish).unwrap_or_default() {
            problems.push(format!(
                "{} line {line}: a restore refuses this: {command}",
                self.name
            ));
        }
        if problems.is_empty() {
            Ok(0)
        } else {
            Err(self.refuse(problems.join("; ")))
        }
    }
}

/// What [`inspect_streaming`] reports as it reads.
pub(crate) enum Event {
    /// The manifest, read first and sound (its names pass
    /// [`crate::manifest::check_names`]).
    Manifest(Manifest),
    /// A PostgreSQL member starts being unpacked.
    Started(String, std::sync::Arc<Growing>),
    /// A member ended: whether it matched the manifest.
    Finished(String, bool),
}

/// Reads the whole (plain) archive at `path`, checking every entry; with
/// `extract_to`, also writes each file there (0600, directories 0700).
/// Only I/O errors on `path` itself are `Err`; damage is reported in
/// [`Inspection::problems`]. A sealed archive is opened with
/// [`crate::archive::Source::open`] and read with [`inspect_metered`].
pub fn inspect(path: &Path, extract_to: Option<&Path>) -> Result<Inspection, Error> {
    inspect_metered(
        &crate::archive::Source::open(path, None)?,
        extract_to,
        &Meter::default(),
    )
}

/// [`inspect`] of an opened archive, plain or sealed, counting the bytes
/// of the archive read into `meter` ([`Stage::Verifying`]). Every sealed
/// chunk is authenticated as it is read: a changed one is reported as
/// damage where it lies.
pub fn inspect_metered(
    archive: &crate::archive::Source,
    extract_to: Option<&Path>,
    meter: &Meter,
) -> Result<Inspection, Error> {
    metered(archive, meter, || {
        inspect_inner(
            archive,
            extract_to,
            meter,
            None,
            &std::collections::BTreeSet::new(),
            None,
        )
    })
}

/// Runs `read` (a pass over `archive`) as the meter's verifying stage.
fn metered(
    archive: &crate::archive::Source,
    meter: &Meter,
    read: impl FnOnce() -> Result<Inspection, Error>,
) -> Result<Inspection, Error> {
    let size = archive.len().map_err(Error::io(archive.path().display()))?;
    meter.begin(Stage::Verifying, size);
    let inspection = read();
    meter.end();
    inspection
}

/// [`inspect_metered`] that unpacks only the members whose names start
/// with `prefix` (e.g. `vault-data/`) into `to` (files 0600, directories
/// 0700), reading and checking the whole archive all the same: a member
/// is trusted only once the archive it came in has no
/// [`Inspection::problems`] — look at them before using what was unpacked.
/// [`Inspection::manifest`] still lists every member.
pub fn extract_prefix(
    archive: &crate::archive::Source,
    prefix: &str,
    to: &Path,
    meter: &Meter,
) -> Result<Inspection, Error> {
    metered(archive, meter, || {
        inspect_inner(
            archive,
            Some(to),
            meter,
            None,
            &std::collections::BTreeSet::new(),
            Some(prefix),
        )
    })
}

/// Where an export archive keeps the old contexts-Vault's data directory.
pub const VAULT_DATA: &str = "vault-data";

/// The old Vault's data directory out of an export archive
/// (`export --vault-data`): [`extract_prefix`] of `vault-data/` into `to`,
/// then `to/vault-data` — only when the whole archive was found intact (a
/// damaged or changed archive is [`Error::Damaged`]: leave whatever was
/// unpacked unused), and `None` when it holds no Vault data.
pub fn vault_data(
    archive: &crate::archive::Source,
    to: &Path,
    meter: &Meter,
) -> Result<Option<std::path::PathBuf>, Error> {
    let inspection = extract_prefix(archive, &format!("{VAULT_DATA}/"), to, meter)?;
    if !inspection.problems.is_empty() {
        return Err(Error::Damaged(inspection.problems));
    }
    let dir = to.join(VAULT_DATA);
    Ok(dir.is_dir().then_some(dir))
}

/// [`inspect_metered`] unpacking to `extract_to`, telling `watch` about the
/// manifest (when it is the first entry, as in every archive circle-export
/// writes) and then about every member as it starts and ends, so that a
/// restore can load a member while the rest of the archive is read. Stops
/// reading (the result then says so) once `stop` is set.
///
/// Members named in `direct` are loaded by readers of their own (see
/// [`VerifyingReader`]), which check them: here they are only read past.
pub(crate) fn inspect_streaming(
    archive: &crate::archive::Source,
    extract_to: &Path,
    meter: &Meter,
    watch: &(dyn Fn(Event) + Sync),
    stop: &std::sync::atomic::AtomicBool,
    direct: &std::collections::BTreeSet<String>,
) -> Result<Inspection, Error> {
    metered(archive, meter, || {
        inspect_inner(
            archive,
            Some(extract_to),
            meter,
            Some((watch, stop)),
            direct,
            None,
        )
    })
}

type Watch<'a> = (
    &'a (dyn Fn(Event) + Sync),
    &'a std::sync::atomic::AtomicBool,
);

/// The largest GNU long-name or PAX header accepted (a longer name is no
/// member of ours, and the tar reader would buffer it whole).
const MAX_NAME_HEADER: u64 = 4096;

/// The largest manifest accepted.
const MAX_MANIFEST: u64 = 64 << 20;

/// The `path` record of a PAX extended header (`"<len> path=<value>\n"`
/// records), if any.
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    let mut path = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &rest[len..];
    }
    path
}

fn inspect_inner(
    source: &crate::archive::Source,
    extract_to: Option<&Path>,
    meter: &Meter,
    watch: Option<Watch<'_>>,
    direct: &std::collections::BTreeSet<String>,
    only: Option<&str>,
) -> Result<Inspection, Error> {
    let path = source.path();
    let mut archive = source.open_tar(meter).map_err(Error::io(path.display()))?;
    // Raw entries: GNU long names and PAX headers are read here, bounded,
    // instead of being buffered whole by the tar reader.
    let entries = archive
        .entries()
        .map_err(Error::io(path.display()))?
        .raw(true);
    let mut walk = Walk {
        extract_to,
        watch,
        direct,
        only,
        early: None,
        limits: None,
        first: true,
        problems: Vec::new(),
        warnings: Vec::new(),
        seen: BTreeMap::new(),
        manifest_bytes: None,
        bytes: 0,
        last: "the start".to_owned(),
        long_name: None,
    };
    for entry in entries {
        if walk.stopped() {
            walk.problems
                .push("the restore stopped reading the archive".to_owned());
            break;
        }
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                walk.corrupt_after(&e);
                break;
            }
        };
        if walk.entry(&mut entry)? == Flow::Stop {
            break;
        }
    }
    Ok(walk.finish())
}

/// Whether to read the archive's next entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Next,
    Stop,
}

/// One reading of an archive, entry by entry ([`inspect_inner`]).
struct Walk<'a> {
    extract_to: Option<&'a Path>,
    watch: Option<Watch<'a>>,
    direct: &'a std::collections::BTreeSet<String>,
    only: Option<&'a str>,
    /// The manifest, once read as the first entry (streaming only).
    early: Option<Manifest>,
    /// The manifest, when it came first: members it does not list, or
    /// whose header gives another size, are refused at their header
    /// (nothing of them is unpacked), so what is written never exceeds its
    /// sizes.
    limits: Option<Manifest>,
    first: bool,
    problems: Vec<String>,
    warnings: Vec<String>,
    seen: BTreeMap<String, Seen>,
    manifest_bytes: Option<Vec<u8>>,
    bytes: u64,
    /// The last member read whole, for messages.
    last: String,
    /// The next entry's name, from a GNU long-name or PAX header before it.
    long_name: Option<String>,
}

/// One member's bytes as [`drain`] left them.
struct Unpacked {
    sink: EntrySink,
    growing: Option<std::sync::Arc<Growing>>,
    is_own_sql: bool,
}

impl Walk<'_> {
    fn stopped(&self) -> bool {
        self.watch
            .is_some_and(|(_, stop)| stop.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn corrupt_after(&mut self, e: &std::io::Error) {
        self.problems.push(format!(
            "the archive is truncated or corrupt after {}: {e}",
            cut(&self.last, 120)
        ));
    }

    /// Reads one raw entry: a name header for the next, or a member.
    fn entry(&mut self, entry: &mut tar::Entry<'_, impl std::io::Read>) -> Result<Flow, Error> {
        let kind = entry.header().entry_type();
        let size = entry.header().size().unwrap_or(u64::MAX);
        if matches!(
            kind,
            tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
                | tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader
        ) {
            return Ok(self.name_header(entry, kind, size));
        }
        let is_first = std::mem::replace(&mut self.first, false);
        let name = match self.long_name.take() {
            Some(name) => name,
            None => String::from_utf8_lossy(&entry.header().path_bytes()).into_owned(),
        };
        let name = match self.admit(name, kind, size) {
            Ok(name) => name,
            Err(flow) => return Ok(flow),
        };
        if self.direct.contains(&name)
            && let Some(file) = self
                .early
                .as_ref()
                .and_then(|m| m.files.iter().find(|f| f.path == name))
        {
            let (size, sha256) = (file.size, file.sha256.clone());
            return Ok(self.read_past(entry, name, size, sha256));
        }
        let Some(unpacked) = self.unpack(entry, &name)? else {
            return Ok(Flow::Stop);
        };
        self.record(name, is_first, unpacked);
        Ok(Flow::Next)
    }

    /// A GNU long-name or PAX header, read bounded: the name of the next
    /// entry.
    fn name_header(
        &mut self,
        entry: &mut impl std::io::Read,
        kind: tar::EntryType,
        size: u64,
    ) -> Flow {
        if size > MAX_NAME_HEADER {
            self.problems.push(format!(
                "an entry after {} has a {kind:?} header of {size} bytes (at most \
                 {MAX_NAME_HEADER}); the archive is refused there",
                cut(&self.last, 120)
            ));
            return Flow::Stop;
        }
        let mut data = Vec::with_capacity(size as usize);
        if let Err(e) = entry.read_to_end(&mut data) {
            self.corrupt_after(&e);
            return Flow::Stop;
        }
        match kind {
            tar::EntryType::GNULongName => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                self.long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            tar::EntryType::XHeader => {
                if let Some(path) = pax_path(&data) {
                    self.long_name = Some(path);
                }
            }
            _ => {}
        }
        Flow::Next
    }

    /// The member's name when it may be read: a regular file at a relative
    /// path, within the manifest's limits once it is known; otherwise what
    /// to do instead (its problem recorded).
    fn admit(&mut self, name: String, kind: tar::EntryType, size: u64) -> Result<String, Flow> {
        let safe = Path::new(&name)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            self.problems.push(format!(
                "{name}: an absolute path or `..` in an archive entry"
            ));
            return Err(Flow::Next);
        }
        if kind.is_dir() {
            return Err(Flow::Next);
        }
        if !kind.is_file() {
            self.problems
                .push(format!("{name}: not a regular file ({kind:?})"));
            return Err(Flow::Next);
        }
        let name = name.trim_start_matches("./").to_owned();
        if name == MANIFEST_PATH && size > MAX_MANIFEST {
            self.problems.push(format!(
                "{MANIFEST_PATH}: {size} bytes (at most {MAX_MANIFEST}); refused at its header"
            ));
            return Err(Flow::Stop);
        }
        if let Some(manifest) = &self.limits {
            match manifest.files.iter().find(|f| f.path == name) {
                None => {
                    self.problems.push(format!(
                        "{}: not listed in the manifest; refused at its header, and the archive \
                         is not read further",
                        cut(&name, 120)
                    ));
                    return Err(Flow::Stop);
                }
                Some(file) if file.size != size => {
                    self.problems.push(format!(
                        "{}: its header says {size} bytes, the manifest {}; refused at its \
                         header, and the archive is not read further",
                        cut(&name, 120),
                        file.size
                    ));
                    return Err(Flow::Stop);
                }
                Some(_) => {}
            }
        }
        Ok(name)
    }

    /// A member loaded by a reader of its own (which checks it): only read
    /// past here. (One that appears twice is still reported.)
    fn read_past(
        &mut self,
        entry: &mut impl std::io::Read,
        name: String,
        size: u64,
        sha256: String,
    ) -> Flow {
        if let Err(e) = std::io::copy(entry, &mut std::io::sink()) {
            self.problems.push(format!(
                "{name}: the archive is truncated or corrupt here: {e}"
            ));
            return Flow::Stop;
        }
        self.bytes += size;
        self.last = name.clone();
        let record = Seen {
            size,
            sha256,
            ..Seen::default()
        };
        if self.seen.insert(name.clone(), record).is_some() {
            self.problems
                .push(format!("{name}: appears twice in the archive"));
        }
        Flow::Next
    }

    /// Reads member `name` whole: hashed, counted, scanned and (when
    /// unpacking) written. `None` when the archive ended inside it.
    fn unpack(
        &mut self,
        entry: &mut impl std::io::Read,
        name: &str,
    ) -> Result<Option<Unpacked>, Error> {
        let out = match self.extract_to {
            Some(dir) if self.only.is_none_or(|prefix| name.starts_with(prefix)) => {
                let target = dir.join(name);
                create_parents(&target).map_err(Error::io(target.display()))?;
                use std::os::unix::fs::OpenOptionsExt as _;
                Some(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&target)
                        .map_err(Error::io(target.display()))?,
                ))
            }
            _ => None,
        };
        let is_manifest = name == MANIFEST_PATH;
        let is_own_sql = name.starts_with("postgres/") && name.ends_with(".sql");
        let is_vendor_sql = name == VENDOR_PG;
        let growing = match (self.watch, &self.early, self.extract_to) {
            (Some((tell, _)), Some(_), Some(dir)) if is_own_sql => {
                let growing = Growing::new(dir.join(name));
                tell(Event::Started(name.to_owned(), growing.clone()));
                Some(growing)
            }
            _ => None,
        };
        let sink = EntrySink {
            growing: growing.clone(),
            hasher: Sha256::new(),
            size: 0,
            bson: name.ends_with(".bson").then(BsonCounter::default),
            copy: (is_own_sql || is_vendor_sql).then(CopyCounter::default),
            psql: (is_own_sql || is_vendor_sql).then(|| {
                Scanner::new(if is_vendor_sql {
                    crate::sqlsplit::Dialect::Vendor
                } else {
                    crate::sqlsplit::Dialect::Own
                })
            }),
            kept: (is_manifest || name.starts_with("vault-data/")).then(Vec::new),
            kept_limit: if is_manifest {
                64 << 20
            } else {
                crate::vault_init::SCAN_LIMIT
            },
            out,
        };
        let (sink, read_error) = drain(entry, sink);
        let failed = read_error.is_some();
        if let Some(e) = read_error {
            self.problems.push(format!(
                "{name}: the archive is truncated or corrupt here: {e}"
            ));
        }
        let mut sink = sink.map_err(Error::io(format!("unpacking {name}")))?;
        // Our own dumps hold one database each (`\connect` is refused); the
        // vendor's pg_dumpall uses it between databases (restore splits
        // the file there).
        for (line, command) in sink.psql.take().map(Scanner::finish).unwrap_or_default() {
            self.problems.push(format!(
                "{name} line {line}: {command}; a restore loads data and nothing else, so this \
                 archive is refused"
            ));
        }
        if let Some(out) = &mut sink.out {
            out.flush()
                .map_err(Error::io(format!("unpacking {name}")))?;
        }
        self.bytes += sink.size;
        if failed {
            if let Some(g) = &growing {
                g.end(false);
            }
            return Ok(None);
        }
        Ok(Some(Unpacked {
            sink,
            growing,
            is_own_sql,
        }))
    }

    /// What a member read whole says: the manifest, warnings about Vault
    /// secrets, its checksums and counts (checked at once when streaming).
    fn record(&mut self, name: String, is_first: bool, unpacked: Unpacked) {
        let Unpacked {
            sink,
            growing,
            is_own_sql,
        } = unpacked;
        let EntrySink {
            hasher,
            size,
            bson,
            copy,
            kept,
            ..
        } = sink;
        let kept = kept.unwrap_or_default();
        self.last = name.clone();
        if name == MANIFEST_PATH {
            self.manifest_read(is_first, kept);
            return;
        }
        if name.starts_with("vault-data/") {
            self.vault_warnings(&name, &kept);
        }
        let mut record = Seen {
            size,
            sha256: hex(&hasher.finalize()),
            documents: bson.map(BsonCounter::finish),
            ..Seen::default()
        };
        match copy {
            Some(counter) if is_own_sql => {
                record.digests = counter.digests();
                record.rows = Some(counter.finish());
            }
            Some(counter) => {
                record.section_digests = counter.section_digests();
                record.sections = Some(counter.finish_sections());
            }
            None => {}
        }
        if let (Some((tell, _)), Some(manifest)) = (self.watch, &self.early) {
            let mut own = member_problems(manifest, &name, &record);
            if self.seen.contains_key(&name) {
                own.push(format!("{name}: appears twice in the archive"));
            }
            // Refusals found in this member (meta-commands) were pushed
            // with its name.
            let prefix = format!("{name} ");
            let refused = self.problems.iter().any(|p| p.starts_with(&prefix));
            let verified = own.is_empty() && !refused;
            if let Some(g) = &growing {
                g.end(verified);
            }
            tell(Event::Finished(name.clone(), verified));
        }
        if self.seen.insert(name.clone(), record).is_some() {
            self.problems
                .push(format!("{name}: appears twice in the archive"));
        }
    }

    /// The manifest read whole: when it came first, the limits every later
    /// member is held to (and, streaming, the restore told of it).
    fn manifest_read(&mut self, is_first: bool, kept: Vec<u8>) {
        if is_first && let Ok(manifest) = serde_json::from_slice::<Manifest>(&kept) {
            if let Some((tell, _)) = self.watch
                && crate::manifest::check_names(&manifest).is_empty()
            {
                tell(Event::Manifest(manifest.clone()));
                self.early = Some(manifest.clone());
            }
            self.limits = Some(manifest);
        }
        self.manifest_bytes = Some(kept);
    }

    fn vault_warnings(&mut self, name: &str, kept: &[u8]) {
        if crate::vault_init::holds_init_output(kept) {
            self.warnings.push(format!(
                "{name} holds Vault init output (unseal keys, root token): whoever holds this \
                 archive can unseal the old Vault and read every context secret; keep the \
                 archive as secret as the keys, or export again without it"
            ));
        } else if crate::vault_init::is_token_file(name) {
            self.warnings.push(format!(
                "{name} holds a Vault token (CircleCI's vault container keeps the root token \
                 there): keep the archive as secret as that token, or export again without it"
            ));
        }
    }

    /// The whole archive read: its layout and manifest, and every
    /// difference between them and what was read.
    fn finish(self) -> Inspection {
        let Walk {
            mut problems,
            warnings,
            seen,
            manifest_bytes,
            bytes,
            ..
        } = self;
        let vendor = manifest_bytes.is_none() && seen.keys().any(|k| k.starts_with(VENDOR_ROOT));
        if vendor {
            let manifest = vendor_manifest(&seen, &mut problems);
            for (database, table) in manifest
                .postgres
                .iter()
                .flat_map(|d| d.tables.iter().map(move |t| (&d.db, &t.name)))
            {
                if !crate::manifest::is_table_name(table) {
                    problems.push(format!(
                        "{VENDOR_PG}: database {database}: {table:?} is not a table name as \
                         pg_dump writes them; refused before it reaches any SQL"
                    ));
                }
            }
            return Inspection {
                layout: Layout::Vendor,
                manifest,
                problems,
                warnings,
                bytes,
            };
        }
        let manifest = match manifest_bytes.map(|b| serde_json::from_slice::<Manifest>(&b)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                problems.push(format!("{MANIFEST_PATH} is not a valid manifest: {e}"));
                Manifest::default()
            }
            None => {
                if problems.is_empty() {
                    problems.push(format!(
                        "{MANIFEST_PATH} is missing: this is not an archive circle-export wrote \
                         (nor one of CircleCI's circle-database-export)"
                    ));
                }
                Manifest::default()
            }
        };
        problems.extend(crate::manifest::check_names(&manifest));
        compare(&manifest, &seen, &mut problems);
        Inspection {
            layout: Layout::Ours,
            manifest,
            problems,
            warnings,
            bytes,
        }
    }
}

/// Where one entry's bytes go: hashed, counted, kept (the manifest) and
/// written (when unpacking).
struct EntrySink {
    /// Told of every chunk written (flushed first), for a loader reading
    /// the file as it grows.
    growing: Option<std::sync::Arc<Growing>>,
    hasher: Sha256,
    size: u64,
    bson: Option<BsonCounter>,
    copy: Option<CopyCounter>,
    psql: Option<Scanner>,
    kept: Option<Vec<u8>>,
    /// How much of the entry `kept` holds at most.
    kept_limit: usize,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl EntrySink {
    fn take(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        if let Some(counter) = &mut self.bson {
            counter.feed(chunk);
        }
        if let Some(counter) = &mut self.copy {
            counter.feed(chunk);
        }
        if let Some(scanner) = &mut self.psql {
            scanner.feed(chunk);
        }
        if let Some(kept) = &mut self.kept
            && kept.len() < self.kept_limit
        {
            let room = self.kept_limit - kept.len();
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if let Some(out) = &mut self.out {
            out.write_all(chunk)?;
            if let Some(growing) = &self.growing {
                out.flush()?;
                growing.wrote(chunk.len() as u64);
            }
        }
        Ok(())
    }
}

/// Reads `entry` to its end into `sink`, decompressing on this thread
/// while another hashes, counts and writes (two cores, not one, on the
/// restore's critical path). Returns the sink (or its write error) and
/// the read error that ended the entry early, if any.
fn drain(
    entry: &mut impl std::io::Read,
    mut sink: EntrySink,
) -> (std::io::Result<EntrySink>, Option<std::io::Error>) {
    const CHUNK: usize = 1 << 20;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            for chunk in full_rx {
                sink.take(&chunk)?;
                let _ = empty_tx.send(chunk);
            }
            Ok(sink)
        });
        let mut read_error = None;
        loop {
            let mut buf = empty_rx.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
            buf.resize(CHUNK, 0);
            match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if full_tx.send(buf).is_err() {
                        // The worker stopped: its write failed.
                        break;
                    }
                }
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(full_tx);
        let sink = worker
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the unpacking thread panicked")));
        (sink, read_error)
    })
}

/// How member `name`, as read, differs from what `manifest` says of it:
/// not listed, size, SHA-256, document or row counts.
fn member_problems(manifest: &Manifest, name: &str, s: &Seen) -> Vec<String> {
    let mut problems = Vec::new();
    match manifest.files.iter().find(|f| f.path == name) {
        None => problems.push(format!("{name}: in the archive but not in the manifest")),
        Some(file) if s.size != file.size => problems.push(format!(
            "{}: {} bytes, the manifest says {}",
            file.path, s.size, file.size
        )),
        Some(file) if s.sha256 != file.sha256 => problems.push(format!(
            "{}: SHA-256 {} differs from the manifest's {}",
            file.path, s.sha256, file.sha256
        )),
        Some(_) => {}
    }
    if let Some(c) = manifest
        .mongo
        .iter()
        .find(|c| bson_path(&c.db, &c.collection) == name)
    {
        match s.documents.as_ref() {
            Some(Ok(n)) if *n == c.documents => {}
            Some(Ok(n)) => problems.push(format!(
                "{name}: {n} documents, the manifest says {}",
                c.documents
            )),
            Some(Err(e)) => problems.push(format!("{name}: {e}")),
            None => {}
        }
    }
    if let Some(d) = manifest.postgres.iter().find(|d| sql_path(&d.db) == name) {
        match s.rows.as_ref() {
            Some(Ok(rows)) => {
                for t in &d.tables {
                    let n = rows.get(&t.name).copied().unwrap_or(0);
                    if n != t.rows {
                        problems.push(format!(
                            "{name}: table {} has {n} rows, the manifest says {}",
                            t.name, t.rows
                        ));
                    }
                    let digest = s.digests.get(&t.name).copied().unwrap_or_default().hex();
                    if let Some(listed) = &t.digest
                        && *listed != digest
                    {
                        problems.push(format!(
                            "{name}: table {}'s rows differ from the manifest's digest",
                            t.name
                        ));
                    }
                }
            }
            Some(Err(e)) => problems.push(format!("{name}: {e}")),
            None => {}
        }
    }
    problems
}

fn compare(manifest: &Manifest, seen: &BTreeMap<String, Seen>, problems: &mut Vec<String>) {
    for file in &manifest.files {
        if !seen.contains_key(&file.path) {
            problems.push(format!("{}: missing from the archive", file.path));
        }
    }
    for (name, s) in seen {
        problems.extend(member_problems(manifest, name, s));
    }
}

fn vendor_manifest(seen: &BTreeMap<String, Seen>, problems: &mut Vec<String>) -> Manifest {
    let mut manifest = Manifest {
        tool: "circle-database-export (CircleCI)".to_owned(),
        ..Manifest::default()
    };
    for (name, s) in seen {
        manifest.files.push(FileEntry {
            path: name.clone(),
            size: s.size,
            sha256: s.sha256.clone(),
        });
        if let Some(rest) = name.strip_prefix(VENDOR_MONGO)
            && let Some((db, file)) = rest.split_once('/')
            && let Some(collection) = file.strip_suffix(".bson")
            && db != "admin"
            && !collection.starts_with("system.")
        {
            match &s.documents {
                Some(Ok(n)) => manifest.mongo.push(CollectionEntry {
                    db: db.to_owned(),
                    collection: collection.to_owned(),
                    documents: *n,
                }),
                Some(Err(e)) => problems.push(format!("{name}: {e}")),
                None => {}
            }
        }
        // mongodump writes a view as its `.metadata.json` alone.
        if let Some(rest) = name.strip_prefix(VENDOR_MONGO)
            && let Some((db, file)) = rest.split_once('/')
            && let Some(view) = file.strip_suffix(".metadata.json")
            && db != "admin"
            && !view.starts_with("system.")
            && !seen.contains_key(&format!("{VENDOR_MONGO}{db}/{view}.bson"))
        {
            manifest.mongo_views.push(crate::manifest::ViewEntry {
                db: db.to_owned(),
                view: view.to_owned(),
            });
        }
        if let Some(sections) = &s.sections {
            match sections {
                Ok(sections) => {
                    for (db, tables) in sections {
                        if matches!(db.as_str(), "template1" | "postgres") {
                            continue;
                        }
                        manifest.postgres.push(DatabaseEntry {
                            db: db.clone(),
                            tables: tables
                                .iter()
                                .map(|(name, rows)| TableEntry {
                                    name: name.clone(),
                                    rows: *rows,
                                    digest: Some(
                                        s.section_digests
                                            .get(db)
                                            .and_then(|d| d.get(name))
                                            .copied()
                                            .unwrap_or_default()
                                            .hex(),
                                    ),
                                })
                                .collect(),
                        });
                    }
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
    }
    if !seen.contains_key(VENDOR_PG) {
        problems.push(format!("{VENDOR_PG}: missing from the vendor archive"));
    }
    manifest
}
