//! Log lines in mongod's structured (JSON) shape.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where lines go.
#[derive(Clone, Debug)]
pub(crate) struct Logger {
    sink: Arc<Mutex<Option<File>>>,
}

impl Logger {
    /// Logs to standard output.
    pub(crate) fn stdout() -> Logger {
        Logger {
            sink: Arc::new(Mutex::new(None)),
        }
    }

    /// Logs to a file (appending, or truncating when `append` is false).
    pub(crate) fn file(path: &Path, append: bool) -> std::io::Result<Logger> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        Ok(Logger {
            sink: Arc::new(Mutex::new(Some(file))),
        })
    }

    fn write(&self, severity: &str, component: &str, message: &str) {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let date = bson::DateTime::from_millis(millis)
            .try_to_rfc3339_string()
            .unwrap_or_default();
        let line = format!(
            "{{\"t\":{{\"$date\":\"{date}\"}},\"s\":\"{severity}\",\"c\":\"{component}\",\"msg\":{}}}\n",
            serde_json_escape(message)
        );
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match sink.as_mut() {
            Some(file) => {
                let _ = file.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stdout().write_all(line.as_bytes());
            }
        }
    }

    /// An informational line.
    pub(crate) fn info(&self, component: &str, message: &str) {
        self.write("I", component, message);
    }

    /// A warning.
    pub(crate) fn warn(&self, component: &str, message: &str) {
        self.write("W", component, message);
    }
}

fn serde_json_escape(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
