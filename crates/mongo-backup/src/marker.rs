//! The record a run leaves while its member is stopped, so that a run
//! killed after the stop (SIGKILL, the OOM killer, a reboot of the tool)
//! is finished by whoever comes next: the unit's `ExecStopPost=` (`recover`)
//! or the next `snapshot`, which start mongod again, wait until it has
//! caught up and release the set's lock.
//!
//! One file per member, `<state_dir>/stopped-<member>.json` (0600, written
//! whole then renamed into place), holding the set, the member and the
//! lease's token — nothing secret.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bson::oid::ObjectId;

use crate::Error;
use crate::lock::Lease;

/// What a run that stopped its member left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The member that was stopped.
    pub member: String,
    /// The set's backup lock the run held.
    pub lease: Lease,
    /// The run's process id (for messages).
    pub pid: u32,
}

/// The marker file of `member` in `dir`.
pub fn path(dir: &Path, member: &str) -> PathBuf {
    let safe: String = member
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("stopped-{safe}.json"))
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Writes `marker` into `dir` (created 0700 if missing), whole or not at
/// all.
pub fn write(dir: &Path, marker: &Marker) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create", dir))?;
    let target = path(dir, &marker.member);
    let partial = target.with_extension("json.partial");
    let _ = std::fs::remove_file(&partial);
    let expires = marker
        .lease
        .expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let text = serde_json::json!({
        "member": marker.member,
        "set": marker.lease.set,
        "token": marker.lease.token.to_hex(),
        "expires": expires,
        "pid": marker.pid,
    })
    .to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io("write", &partial))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", &partial))?;
    std::fs::rename(&partial, &target).map_err(io("write", &target))
}

/// The marker of `member` in `dir`, if a run left one.
pub fn read(dir: &Path, member: &str) -> Result<Option<Marker>, Error> {
    let file_path = path(dir, member);
    let file = match std::fs::File::open(&file_path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &file_path)(e)),
    };
    let mut text = String::new();
    file.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(io("read", &file_path))?;
    let bad = |what: &str| Error::Io {
        action: "read",
        path: file_path.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a mongo-backup marker ({what}); remove it once mongod runs again"),
        ),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad("JSON"))?;
    let field = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
    let token = field("token")
        .and_then(|t| ObjectId::parse_str(t).ok())
        .ok_or_else(|| bad("token"))?;
    Ok(Some(Marker {
        member: field("member").ok_or_else(|| bad("member"))?.to_owned(),
        lease: Lease {
            set: field("set").ok_or_else(|| bad("set"))?.to_owned(),
            token,
            expires: SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    value
                        .get("expires")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0),
                ),
        },
        pid: value
            .get("pid")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32,
    }))
}

/// The marker a run left in `dir` for `member`, or, with `member` empty
/// (the member is "whatever this machine runs"), for any member.
pub fn find(dir: &Path, member: &str) -> Result<Option<Marker>, Error> {
    if !member.is_empty() {
        return read(dir, member);
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("stopped-") && name.ends_with(".json") {
            let path = entry.path();
            let mut text = String::new();
            if std::fs::File::open(&path)
                .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
                .is_ok()
                && let Some(member) = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("member").and_then(|m| m.as_str()).map(str::to_owned))
            {
                return read(dir, &member);
            }
        }
    }
    Ok(None)
}

/// Removes `member`'s marker (absent already is fine).
pub fn remove(dir: &Path, member: &str) -> Result<(), Error> {
    let file_path = path(dir, member);
    match std::fs::remove_file(&file_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &file_path)(e)),
        _ => Ok(()),
    }
}
