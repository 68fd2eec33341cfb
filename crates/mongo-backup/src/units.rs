//! The systemd units that run `mongo-backup snapshot` on a schedule on each
//! member. Every member gets the same timer; the set's lock and the guards
//! decide which one actually stops (the others refuse and say why), and
//! each run first checks that this machine's mongod is the member it
//! guards. `ExecStopPost=` runs `mongo-backup recover` after every run,
//! whatever ended it (SIGKILL and the OOM killer included): a run that
//! died with mongod stopped is finished there.

/// What the units run and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitSpec {
    /// The `mongo-backup` binary.
    pub binary: String,
    /// The `ha.toml` it reads.
    pub config: String,
    /// systemd `OnCalendar=` (e.g. `daily`, `*-*-* 03:00:00`).
    pub on_calendar: String,
    /// systemd `RandomizedDelaySec=`, seconds, so members do not all start
    /// at once.
    pub randomized_delay_secs: u32,
    /// `--member` for the runs (`None`: `[backup].member`, else the local
    /// mongod's own name).
    pub member: Option<String>,
    /// `EnvironmentFile=`: `NAME=value` lines for `env:` secret references.
    pub environment_file: Option<String>,
    /// `LoadCredential=NAME:PATH` lines, for `cred:NAME` secret references.
    pub credentials: Vec<(String, String)>,
    /// `OnFailure=`: a unit to start when a run fails (alerting).
    pub on_failure: Option<String>,
}

impl Default for UnitSpec {
    fn default() -> UnitSpec {
        UnitSpec {
            binary: "/usr/local/bin/mongo-backup".to_owned(),
            config: "/etc/circle-ha/ha.toml".to_owned(),
            on_calendar: "*-*-* 03:00:00".to_owned(),
            randomized_delay_secs: 900,
            member: None,
            environment_file: None,
            credentials: Vec::new(),
            on_failure: None,
        }
    }
}

/// The unit files, `(file name, text)`: `mongo-backup.service` (a oneshot
/// running `snapshot`) and `mongo-backup.timer`. Values with characters
/// systemd would read differently (newlines, `%`, quotes) are refused.
pub fn render_units(spec: &UnitSpec) -> Result<Vec<(String, String)>, String> {
    let mut values: Vec<(&str, &str)> = vec![
        ("binary", &spec.binary),
        ("config", &spec.config),
        ("on_calendar", &spec.on_calendar),
    ];
    for (name, value) in [
        ("member", &spec.member),
        ("environment_file", &spec.environment_file),
        ("on_failure", &spec.on_failure),
    ] {
        if let Some(value) = value {
            values.push((name, value));
        }
    }
    for (name, path) in &spec.credentials {
        values.push(("credentials", name));
        values.push(("credentials", path));
    }
    for (name, value) in &values {
        if value.is_empty()
            || value
                .chars()
                .any(|c| c.is_control() || matches!(c, '%' | '"' | '\'' | '\\' | '$'))
        {
            return Err(format!(
                "{name}: {value:?} cannot go into a systemd unit (empty, or it has a control \
                 character, %, a quote, \\ or $)"
            ));
        }
    }
    let mut paths = vec![("binary", &spec.binary), ("config", &spec.config)];
    if let Some(file) = &spec.environment_file {
        paths.push(("environment_file", file));
    }
    for (_, path) in &spec.credentials {
        paths.push(("credentials", path));
    }
    for (name, value) in paths {
        if !value.starts_with('/') || value.contains(' ') {
            return Err(format!(
                "{name}: {value:?} must be an absolute path without spaces"
            ));
        }
    }
    for (name, _) in &spec.credentials {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "credentials: {name:?} is not a credential name (letters, digits, _ - .)"
            ));
        }
    }
    if let Some(member) = &spec.member
        && !member
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
    {
        return Err(format!("member: {member:?} is not host:port"));
    }
    let member = spec
        .member
        .as_ref()
        .map(|m| format!(" --member {m}")) // tidy: renders a command line
        .unwrap_or_default();
    let mut extra = String::new();
    if let Some(file) = &spec.environment_file {
        extra.push_str(&format!(
            "# env: secret references of ha.toml, as NAME=value lines (0600).\n\
             EnvironmentFile={file}\n"
        ));
    }
    for (name, path) in &spec.credentials {
        extra.push_str(&format!("LoadCredential={name}:{path}\n"));
    }
    let on_failure = spec
        .on_failure
        .as_ref()
        .map(|unit| format!("OnFailure={unit}\n"))
        .unwrap_or_default();
    let service = format!(
        "# Rendered by mongo-backup render-units.\n\
         [Unit]\n\
         Description=Snapshot this MongoDB member if the replica set can spare it (mongo-backup)\n\
         After=network-online.target mongod.service\n\
         Wants=network-online.target\n\
         {on_failure}\
         \n\
         [Service]\n\
         Type=oneshot\n\
         {extra}\
         ExecStart={binary} snapshot --config {config}{member}\n\
         # After every run, however it ended (SIGKILL and the OOM killer\n\
         # included): start mongod again if the run died while it was\n\
         # stopped, and release the set's lock (nothing to do: changed 0).\n\
         ExecStopPost={binary} recover --config {config}{member}\n\
         # Exit 3 means the guards refused (another member is backing up, this\n\
         # one is the primary, this machine runs another member …): not a\n\
         # failure of the unit.\n\
         SuccessExitStatus=3\n\
         # The run restarts mongod itself whatever happens; give it time to.\n\
         TimeoutStopSec=600\n\
         KillMode=mixed\n",
        binary = spec.binary,
        config = spec.config,
    );
    let timer = format!(
        "# Rendered by mongo-backup render-units.\n\
         [Unit]\n\
         Description=Daily snapshot of this MongoDB member (mongo-backup)\n\
         \n\
         [Timer]\n\
         OnCalendar={calendar}\n\
         RandomizedDelaySec={delay}\n\
         Persistent=true\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        calendar = spec.on_calendar,
        delay = spec.randomized_delay_secs,
    );
    Ok(vec![
        ("mongo-backup.service".to_owned(), service),
        ("mongo-backup.timer".to_owned(), timer),
    ])
}

/// Writes the units into `dir` (0644), leaving identical files alone, as a
/// report under `tool`'s name (a second run writes nothing).
pub fn write_units(
    spec: &UnitSpec,
    dir: &std::path::Path,
    tool: &str,
) -> Result<ha_plan::Report, crate::Error> {
    let units = render_units(spec).map_err(|detail| crate::Error::Command {
        what: "render-units",
        command: String::new(),
        detail,
    })?;
    let mut actions = Vec::new();
    for (name, text) in units {
        let path = dir.join(&name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            continue;
        }
        std::fs::write(&path, &text).map_err(|source| crate::Error::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        let shown = path.display().to_string();
        actions.push(ha_plan::Action::new(
            "write",
            shown.clone(),
            format!("write {shown}"),
        ));
    }
    Ok(ha_plan::Report::new(tool, false, actions, Vec::new()))
}

#[cfg(test)]
mod tests;
