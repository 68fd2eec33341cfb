//! Child processes that live as long as their handle: start, wait until
//! ready, stop on drop.

#![allow(unsafe_code)]

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;

/// How long a service may take to become ready. Generous on purpose: CI
/// machines are small and busy, and a wait that ends early costs nothing.
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(120);

/// How long a stopped service gets to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How often readiness conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running child process whose output goes to a log file. Dropping it stops
/// the process (graceful signal, then SIGKILL after a grace period); if the
/// current thread is panicking, the end of the log is printed first so a
/// failing test shows why.
#[derive(Debug)]
pub(crate) struct Daemon {
    what: &'static str,
    child: Option<Child>,
    log: PathBuf,
    stop_signal: i32,
}

impl Daemon {
    /// Starts `command` with stdout and stderr appended to `log`. The child
    /// is killed if the thread that started it dies (`PR_SET_PDEATHSIG`),
    /// so a crashed test run leaves nothing behind.
    pub(crate) fn spawn(
        what: &'static str,
        mut command: Command,
        log: &Path,
        stop_signal: i32,
    ) -> Result<Daemon, Error> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(Error::io(log))?;
        let log_file_err = log_file.try_clone().map_err(Error::io(log))?;
        command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_file_err);
        // SAFETY: prctl is async-signal-safe and touches only this process.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let program = PathBuf::from(command.get_program());
        let child = command.spawn().map_err(|source| Error::Spawn {
            what,
            program,
            source,
        })?;
        Ok(Daemon {
            what,
            child: Some(child),
            log: log.to_owned(),
            stop_signal,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Fails with the log's tail if the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Err(Error::Exited {
                    what: self.what,
                    status,
                    log: self.log.clone(),
                    log_tail: log_tail(&self.log),
                })
            }
            Ok(None) | Err(_) => Ok(()),
        }
    }

    /// Polls `ready` until it holds, the process exits, or the start
    /// deadline passes.
    pub(crate) fn wait_until(&mut self, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            if ready() {
                return Ok(());
            }
            if started.elapsed() > START_DEADLINE {
                return Err(Error::NotReady {
                    what: self.what,
                    seconds: START_DEADLINE.as_secs(),
                    log: self.log.clone(),
                    log_tail: log_tail(&self.log),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends the stop signal, waits for the exit (up to a grace period), then
    /// kills. Idempotent.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with(self.stop_signal)
    }

    /// Kills the process at once with SIGKILL, as a crash or power loss
    /// would, and reaps it.
    pub(crate) fn kill(&mut self) -> Option<ExitStatus> {
        self.stop_with(libc::SIGKILL)
    }

    fn stop_with(&mut self, signal: i32) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        send_signal(child.id(), signal);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            #[allow(clippy::print_stderr)]
            {
                // The test harness shows this only for the failing test.
                eprintln!(
                    "--- {} log {} (last lines) ---\n{}",
                    self.what,
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
        }
        self.stop();
    }
}

/// Sends `signal` to process `pid`.
pub(crate) fn send_signal(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The last 40 lines of a log file (or a note that it cannot be read),
/// with a run of lines that differ only in their timestamp shown once and
/// counted, so that the first of a loop of errors is not pushed out by its
/// repetitions.
pub(crate) fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    match File::open(path) {
        Ok(mut file) => {
            let _ = file.read_to_string(&mut text);
        }
        Err(e) => return format!("(cannot read {}: {e})", path.display()),
    }
    let lines = collapse_repeats(&text);
    let start = lines.len().saturating_sub(40);
    lines[start..].join("\n")
}

/// The lines of `text`, each run of lines equal but for a leading
/// `{"t":{"$date":...}}` timestamp given as its first line followed by
/// "(N more like it until <last line's timestamp>)".
fn collapse_repeats(text: &str) -> Vec<String> {
    fn without_time(line: &str) -> &str {
        match line.split_once("},") {
            Some((head, rest)) if head.starts_with("{\"t\":") => rest,
            _ => line,
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(&str, usize, &str)> = None;
    let flush = |out: &mut Vec<String>, run: Option<(&str, usize, &str)>| {
        if let Some((first, more, last)) = run {
            out.push(first.to_owned());
            let time = last
                .strip_prefix("{\"t\":{\"$date\":\"")
                .and_then(|rest| rest.split_once('"'))
                .map(|(time, _)| time);
            match time {
                _ if more == 0 => {}
                Some(time) => out.push(format!("    ({more} more like it, the last at {time})")),
                None => out.push(format!("    ({more} more like it)")),
            }
        }
    };
    for line in text.lines() {
        match run {
            Some((first, more, _)) if without_time(first) == without_time(line) => {
                run = Some((first, more + 1, line));
            }
            _ => {
                flush(&mut out, run.take());
                run = Some((line, 0, line));
            }
        }
    }
    flush(&mut out, run);
    out
}

/// Whether a log file contains `needle`.
pub(crate) fn log_contains(path: &Path, needle: &str) -> bool {
    fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

/// Ports handed out by this process, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Writes an executable script (mode 0755) that a test then runs.
///
/// Written through `sh` rather than from this process: a file this
/// (multithreaded) process holds open for writing is inherited by any child
/// another thread forks meanwhile, until that child execs, and executing
/// the script then fails with "Text file busy" (ETXTBSY) — a flake that
/// shows under load. Here only the short-lived `sh` ever holds the file
/// open for writing.
pub fn write_executable(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), Error> {
    use std::io::Write as _;
    let spawn_error = |source| Error::Spawn {
        what: "sh (writing a script)",
        program: PathBuf::from("sh"),
        source,
    };
    let mut child = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(contents.as_ref()));
    let status = child.wait().map_err(spawn_error)?;
    match written {
        Some(Ok(())) if status.success() => Ok(()),
        Some(Err(source)) => Err(spawn_error(source)),
        _ => Err(Error::SetupFailed {
            what: format!("writing {}", path.display()),
            status,
            output_tail: String::new(),
        }),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process
/// has not handed out before. Another process may still take it before the
/// service binds it; services retry start-up on "address in use".
pub fn free_port() -> Result<u16, Error> {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(Error::io("127.0.0.1:0 (looking for a free port)"))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("127.0.0.1:0 (looking for a free port)"))?
            .port();
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
}

/// Whether a start-up failure was caused by a port already in use, so that
/// the caller should retry with another port.
pub(crate) fn is_port_clash(error: &Error) -> bool {
    let tail = match error {
        Error::Exited { log_tail, .. } | Error::NotReady { log_tail, .. } => log_tail,
        _ => return false,
    };
    let tail = tail.to_ascii_lowercase();
    tail.contains("address already in use") || tail.contains("could not bind")
}

/// Random bytes from the kernel.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SAFETY: getrandom(2) writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(
        usize::try_from(n).ok(),
        Some(N),
        "getrandom(2) failed; the kernel's random source is unavailable"
    );
    buf
}

/// A random password of 32 characters from an unambiguous alphabet.
pub fn random_password() -> secrecy::SecretString {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 32] = random_bytes();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect::<String>()
        .into()
}

/// Retries `start` with fresh ports while failures are port clashes.
pub(crate) fn with_port_retries<T>(
    mut start: impl FnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match start() {
            Err(e) if attempts < 5 && is_port_clash(&e) => continue,
            res => return res,
        }
    }
}

#[cfg(test)]
mod tests;
