//! Stopping and starting the member's mongod, and knowing when it has
//! really stopped.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;

use crate::Error;

/// How the member's mongod is stopped and started. The production
/// implementation is [`Commands`] (`systemctl stop mongod` …); a program
/// that runs mongod itself implements it over its own process handle.
pub trait MemberProcess: Send {
    /// Asks mongod to stop (a clean shutdown). Returning does not mean it
    /// has stopped: [`wait_stopped`] checks that.
    fn stop(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
    /// Starts mongod again.
    fn start(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Stop and start commands, run without a shell (argv as given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commands {
    /// Default `systemctl stop mongod`.
    pub stop: Vec<String>,
    /// Default `systemctl start mongod`.
    pub start: Vec<String>,
    /// How long either may run before it is killed.
    pub timeout: Duration,
}

impl Default for Commands {
    fn default() -> Commands {
        Commands {
            stop: ["systemctl", "stop", "mongod"].map(str::to_owned).to_vec(),
            start: ["systemctl", "start", "mongod"].map(str::to_owned).to_vec(),
            timeout: Duration::from_secs(300),
        }
    }
}

impl MemberProcess for Commands {
    async fn stop(&mut self) -> Result<(), Error> {
        run("stop", &self.stop, self.timeout).await
    }

    async fn start(&mut self) -> Result<(), Error> {
        run("start", &self.start, self.timeout).await
    }
}

/// Runs `argv`, waiting at most `timeout`; a non-zero exit is an error
/// carrying the end of its standard error.
pub(crate) async fn run(
    what: &'static str,
    argv: &[String],
    timeout: Duration,
) -> Result<(), Error> {
    let shown = argv.join(" ");
    let fail = |detail: String| Error::Command {
        what,
        command: shown.clone(),
        detail,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("the command is empty".to_owned()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    let stderr = child.stderr.take();
    // Read standard error alongside, so a chatty command cannot block on a
    // full pipe; but do not wait for its end after the command has exited:
    // a process it started in the background may hold the pipe open.
    let reader = tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(stderr) = stderr {
            let mut limited = stderr.take(64 * 1024);
            let mut chunk = [0_u8; 4096];
            while let Ok(n) = limited.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&chunk[..n]);
            }
        }
        text
    });
    let status = tokio::time::timeout(timeout, child.wait())
        .await
        .map_err(|_| {
            fail(format!(
                "still running after {}s; killed",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| fail(e.to_string()))?;
    if status.success() {
        reader.abort();
        return Ok(());
    }
    let text = match tokio::time::timeout(Duration::from_secs(1), reader).await {
        Ok(Ok(text)) => text,
        _ => Vec::new(),
    };
    let text = String::from_utf8_lossy(&text);
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(fail(format!("{status}: {}", tail.join(" | "))))
}

/// Waits until the member at `host` (`host:port`) no longer accepts
/// connections and, when `db_path` is given, its `mongod.lock` is no longer
/// held (mongod holds an exclusive `flock` on it while it runs), checking
/// every `poll` until `timeout`.
pub async fn wait_stopped(
    host: &str,
    db_path: Option<&Path>,
    timeout: Duration,
    poll: Duration,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let listening = matches!(
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(host))
                .await,
            Ok(Ok(_))
        );
        let lock_held = match db_path {
            Some(dir) => lock_held(&dir.join("mongod.lock"))?,
            None => false,
        };
        if !listening && !lock_held {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            let mut last = Vec::new();
            if listening {
                last.push(format!("{host} still accepts connections"));
            }
            if lock_held {
                last.push("mongod.lock is still held".to_owned());
            }
            return Err(Error::Timeout {
                what: format!("mongod on {host} to stop"),
                waited: timeout,
                last: last.join("; "),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Whether another process holds `mongod.lock`'s exclusive lock (a missing
/// file is not held).
fn lock_held(path: &PathBuf) -> Result<bool, Error> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Io {
                action: "open",
                path: path.clone(),
                source,
            });
        }
    };
    match file.try_lock() {
        // Taken and released at once (dropping the file unlocks it).
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io {
            action: "lock",
            path: path.clone(),
            source,
        }),
    }
}
