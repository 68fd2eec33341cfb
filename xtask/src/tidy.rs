//! Tidy checks: the workspace's shape, kept by tests (in the manner of
//! rust-analyzer's `xtask/src/tidy.rs`). `cargo xtask tidy` runs them too.
//!
//! 1. **Dependency direction.** The concern crates never depend on the
//!    binaries (`circle-ha`), on `ha-config` or on the demo, and use the
//!    test lab (`ha-lab`) only as a dev-dependency: a program can link any
//!    of them without `ha.toml` and without the lab. `ha-config` and the
//!    binaries may link the concern crates, never the lab or the demo.
//! 2. **One place builds TLS clients.** Outside `ha-tls` no source builds
//!    a rustls client configuration (`ClientConfig::builder…`); everything
//!    else asks `ha_tls::client_config`, whose verification is on unless a
//!    variant named for the danger is chosen. mongo-sim, the stand-in for
//!    mongod, is exempt: it must share nothing with the tools but the wire.
//!    mongo-sim does not even depend on `ha-tls` outside its tests.
//! 3. **Libraries neither print nor read the environment.** Library source
//!    (`crates/*/src`, not `src/bin`) has no `print!`/`eprint!`/`dbg!` and
//!    no `std::env::var*`/`args`: the binaries decide what is shown and
//!    pass the environment in. `ha-lab` (test support) may print a
//!    service's log while a test fails.
//! 4. **mongo-sim is layered without cycles.** Its modules reference only
//!    modules of lower layers: wire and the leaves (errors, log, options,
//!    version) → replica-set config → storage, TLS → SCRAM → auth → node (a
//!    member's state and its transitions) → peer (member-to-member
//!    connections) → commands and replication (neither uses the other) →
//!    server. A command handler that needs a state transition calls the
//!    node; replication never calls into a command handler.
//! 5. **The docs name items that exist.** Every `` `path::item` `` in
//!    ARCHITECTURE.md and docs/library.md whose first segment is a
//!    workspace crate (`vault_transit::migrate::migrate`) — or, under a
//!    crate's heading or table row, a module or type of that crate
//!    (`legacy::OldVault`) — ends in an item declared in that crate's
//!    source (a fn, type, trait, const, module, variant or field of that
//!    name). A renamed or deleted item leaves no stale name behind.
//! 6. **Concern crates use each other only where listed.** Besides the
//!    foundations (`ha-plan`, `ha-tls`), a concern crate may depend on
//!    another only by an edge of [`CONCERN_EDGES`], each with its reason
//!    (the one MongoDB and the one PostgreSQL connection helper, doctor's
//!    readers), so the crates do not grow into a web.
//!
//! 7. **Concern crates name no ha.toml key and no decision flag.** Their
//!    code (messages, report text) says what the spec or caller gives —
//!    "the spec's members", "a MongoDB target" — never `[mongo].members`
//!    or `--mongo-uri`: a program linking them has neither; ha-config and
//!    the binaries name those. A line that renders a command line on
//!    purpose (a systemd unit's `ExecStart`) says so with
//!    `// tidy: renders a command line`.
//!
//! 8. **No test hides where it never runs.** The binaries' `src/bin/`,
//!    the demo's sources and mongo-sim's binary are built without a test
//!    harness (`test = false`: glue, each harness would link everything
//!    again); a test there is a violation.
//!
//! Rules 1 and 6 read the members and their dependencies from `cargo
//! metadata`, as cargo reads the manifests (renamed, target-specific and
//! inherited dependencies included). The tidy test is part of xtask's
//! tests, which a plain `cargo test` runs (xtask is a default member).

use std::fs;
use std::path::{Path, PathBuf};

use crate::json::Json;

/// The crates a program links to do one concern of the runbook.
const CONCERN_CRATES: &[&str] = &[
    "circle-export",
    "ha-doctor",
    "ha-ec2",
    "ha-plan",
    "ha-tls",
    "mongo-rs-setup",
    "mongo-backup",
    "pg-provision",
    "services-userdata",
    "vault-transit",
];

/// What every crate may build on: the shared vocabulary and TLS.
const FOUNDATIONS: &[&str] = &["ha-plan", "ha-tls"];

/// Rule 6: the concern crates that may use another concern crate (besides
/// [`FOUNDATIONS`]), each for one reason.
const CONCERN_EDGES: &[(&str, &str)] = &[
    // The one MongoDB connection helper (driver options, credentials, TLS
    // files): `mongo_rs_setup::driver`.
    ("circle-export", "mongo-rs-setup"),
    ("mongo-backup", "mongo-rs-setup"),
    ("ha-doctor", "mongo-rs-setup"),
    // The one PostgreSQL connection helper (`pg_provision::Server`,
    // `SslMode`, error descriptions).
    ("circle-export", "pg-provision"),
    ("ha-doctor", "pg-provision"),
    // The one EC2 client (the Query API calls, signed): EBS snapshots,
    // launch templates.
    ("mongo-backup", "ha-ec2"),
    ("services-userdata", "ha-ec2"),
    // Doctor checks what the bundle says, with each concern's own readers.
    ("ha-doctor", "services-userdata"),
    ("ha-doctor", "vault-transit"),
];

/// The runbook: every concern in order (`apply`, `status`). It may use
/// every concern crate; like them it is usable without `ha.toml` (rules 1
/// and 7 hold for it), and no concern crate uses it.
const RUNBOOK: &str = "ha-runbook";

/// Packages a concern crate (or the runbook) must never depend on, in any
/// section.
const NEVER_FOR_CONCERNS: &[&str] = &["circle-ha", "ha-config", "ha-demo", RUNBOOK];

/// Packages only tests and the demo may depend on (dev-dependencies).
const TEST_ONLY: &[&str] = &["ha-lab", "ha-demo"];

/// One broken rule, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file.
    pub(crate) path: PathBuf,
    /// What is wrong.
    pub(crate) message: String,
}

/// One workspace member as `cargo metadata` describes it.
#[derive(Clone, Debug)]
pub(crate) struct Package {
    /// Its name.
    pub(crate) name: String,
    /// Its `Cargo.toml`.
    pub(crate) manifest: PathBuf,
    /// What it declares: `(section, name)`, where section is
    /// `dependencies`, `dev-dependencies` or `build-dependencies`
    /// (target-specific ones count as their kind; a renamed dependency by
    /// the package it names).
    pub(crate) dependencies: Vec<(String, String)>,
}

/// The workspace's members, from `cargo metadata --no-deps` run in `root`
/// (so every way Cargo.toml can declare a dependency is read as cargo
/// reads it).
pub(crate) fn workspace_packages(root: &Path) -> Result<Vec<Package>, String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let doc = Json::parse(&text).map_err(|e| format!("cargo metadata: {e}"))?;
    let mut packages = Vec::new();
    for package in doc.get("packages").map(Json::items).unwrap_or_default() {
        let field = |key: &str| package.get(key).and_then(Json::as_str).unwrap_or_default();
        let dependencies = package
            .get("dependencies")
            .map(Json::items)
            .unwrap_or_default()
            .iter()
            .map(|dep| {
                let section = match dep.get("kind").and_then(Json::as_str) {
                    Some("dev") => "dev-dependencies",
                    Some("build") => "build-dependencies",
                    _ => "dependencies",
                };
                let name = dep.get("name").and_then(Json::as_str).unwrap_or_default();
                (section.to_owned(), name.to_owned())
            })
            .collect();
        packages.push(Package {
            name: field("name").to_owned(),
            manifest: PathBuf::from(field("manifest_path")),
            dependencies,
        });
    }
    packages.sort_by(|a, b| a.manifest.cmp(&b.manifest));
    Ok(packages)
}

/// Rule 4: mongo-sim's modules by layer (a module may use only modules of a
/// lower layer; `bin` and `lib` are the entry points).
const MONGO_SIM_LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("log", 0),
    ("version", 0),
    ("wire", 0),
    ("options", 1),
    ("replset", 1),
    ("storage", 2),
    ("tls", 2),
    ("scram", 3),
    ("auth", 4),
    ("node", 5),
    ("peer", 6),
    ("commands", 7),
    ("replication", 7),
    ("server", 8),
];

/// Rule 4 for one mongo-sim source file (`module` is its top-level
/// module: `commands` for `commands/repl.rs`).
pub(crate) fn check_sim_layers(module: &str, path: &Path, source: &str) -> Vec<Violation> {
    let rank = |name: &str| {
        MONGO_SIM_LAYERS
            .iter()
            .find(|(m, _)| *m == name)
            .map(|(_, r)| *r)
    };
    let Some(own) = rank(module) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (number, line) in source.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let used: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if used != module
                && let Some(theirs) = rank(&used)
                && theirs >= own
            {
                found.push(Violation {
                    path: path.to_owned(),
                    message: format!(
                        "line {}: mongo-sim's {module} (layer {own}) uses {used} (layer {theirs}): \
                         modules use only lower layers (see xtask/src/tidy.rs, rule 4)",
                        number + 1
                    ),
                });
            }
        }
    }
    found
}

/// Rules 1 and 6 for one package's declared dependencies (`(section,
/// name)`, as [`Package::dependencies`]).
pub(crate) fn check_manifest(
    package: &str,
    path: &Path,
    dependencies: &[(String, String)],
) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut violation = |message: String| {
        found.push(Violation {
            path: path.to_owned(),
            message,
        })
    };
    for (section, name) in dependencies {
        let normal = section != "dev-dependencies";
        if (CONCERN_CRATES.contains(&package) || package == RUNBOOK)
            && NEVER_FOR_CONCERNS.contains(&name.as_str())
        {
            violation(format!(
                "{package} (a concern crate) depends on {name} in [{section}]: concern crates \
                 and the runbook must be usable without ha.toml, the binaries or the demo, and \
                 no concern crate runs the runbook"
            ));
        } else if normal
            && TEST_ONLY.contains(&name.as_str())
            && !["ha-demo", "ha-tests", "ha-benches"].contains(&package)
        {
            violation(format!(
                "{package} depends on {name} in [{section}]: the test lab and the demo are \
                 only ever dev-dependencies of shipped code"
            ));
        } else if package == "mongo-sim" && normal && name == "ha-tls" {
            violation(
                "mongo-sim depends on ha-tls in [dependencies]: the stand-in must share nothing \
                 with the tools but the wire (its own TLS setup and x509 reading), or a \
                 misreading of MongoDB's rules would pass both"
                    .into(),
            );
        } else if package == "ha-config" && name == "circle-ha" {
            violation("ha-config depends on circle-ha: libraries never depend on binaries".into());
        } else if normal
            && CONCERN_CRATES.contains(&package)
            && CONCERN_CRATES.contains(&name.as_str())
            && !FOUNDATIONS.contains(&name.as_str())
            && !CONCERN_EDGES.contains(&(package, name.as_str()))
        {
            violation(format!(
                "{package} depends on {name} in [{section}]: not one of the concern-to-concern \
                 edges tidy allows (CONCERN_EDGES in xtask/src/tidy.rs; add it there, with its \
                 reason, if the design wants it)"
            ));
        }
    }
    found
}

/// Sources whose targets are built without a test harness (`test = false`
/// in their Cargo.toml: glue with no tests of its own, which would each
/// link everything again for nothing).
const NO_HARNESS: &[&str] = &["bins/src/bin", "demo/src", "crates/mongo-sim/src/bin"];

/// Rule 8: a file of [`NO_HARNESS`] holds no test (it would never run).
pub(crate) fn check_no_tests(path: &Path, source: &str) -> Vec<Violation> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            ["#[test]", "#[tokio::test", "#[cfg(test)]"]
                .iter()
                .any(|t| code.starts_with(t))
        })
        .map(|(number, _)| Violation {
            path: path.to_owned(),
            message: format!(
                "line {}: a test in a target built without its test harness (test = false): it \
                 would never run; put it in the library or in tests/",
                number + 1
            ),
        })
        .collect()
}

/// Rules 2 and 3 for one library source file of `package`.
pub(crate) fn check_source(package: &str, path: &Path, source: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    let in_bin = path.components().any(|c| c.as_os_str() == "bin")
        || path.file_name().is_some_and(|n| n == "main.rs");
    let test_file = path
        .file_name()
        .is_some_and(|n| n == "tests.rs" || n.to_string_lossy().ends_with("_tests.rs"));
    if in_bin || test_file {
        return found;
    }
    let mut in_tests = false;
    for (number, line) in source.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            // Unit tests sit at the end of a file, by this workspace's style.
            in_tests = true;
        }
        if in_tests || code.starts_with("//") {
            continue;
        }
        let mut violation = |message: &str| {
            found.push(Violation {
                path: path.to_owned(),
                message: format!("line {}: {message}", number + 1),
            })
        };
        if package != "ha-tls"
            && package != "mongo-sim"
            && (code.contains("ClientConfig::builder") || code.contains("ClientConfig {"))
        {
            violation(
                "builds a rustls client configuration; use ha_tls::client_config (the one place \
                 TLS verification is decided)",
            );
        }
        if package == "ha-lab" {
            continue;
        }
        if (CONCERN_CRATES.contains(&package) || package == RUNBOOK)
            && !code.contains("// tidy: renders a command line")
        {
            for word in config_keys_and_flags(code) {
                violation(&format!(
                    "{word} in a concern crate: ha.toml keys and the binaries' flags are named by \
                     ha-config and the binaries; say what the spec or caller gives instead"
                ));
            }
        }
        for token in ["println!", "print!", "eprintln!", "eprint!", "dbg!"] {
            if contains_macro(code, token) {
                violation(&format!(
                    "{token} in a library: return the text, the binaries print"
                ));
            }
        }
        for token in [
            "env::var(",
            "env::var_os(",
            "env::vars(",
            "env::vars_os(",
            "env::args(",
            "env::args_os(",
        ] {
            if code.contains(token) {
                violation(&format!(
                    "{token}…) in a library: take the value (or a lookup) from the caller"
                ));
            }
        }
    }
    found
}

/// `ha.toml`'s sections, as key paths start (`[mongo].members`).
const SECTIONS: &[&str] = &["pki", "mongo", "postgres", "vault", "services", "backup"];

/// The binaries' flags that carry an operator's decision (rule 7).
const FLAGS: &[&str] = &[
    "--dry-run",
    "--force",
    "--drop",
    "--member",
    "--any-member",
    "--mongo-uri",
    "--pg-uri",
    "--mongo-dump",
    "--encryption-keys",
    "--vault-data",
];

/// Rule 7 for one line of code: the `ha.toml` key paths (`[mongo].…`)
/// and the binaries' decision flags ([`FLAGS`]) it names.
fn config_keys_and_flags(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for section in SECTIONS {
        if code.contains(&format!("[{section}].")) {
            found.push(format!("[{section}]."));
        }
    }
    for flag in FLAGS {
        let named = code.match_indices(flag).any(|(i, _)| {
            !code[i + flag.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        if named {
            found.push((*flag).to_owned());
        }
    }
    found
}

/// Whether `code` invokes the macro `token` (`print!` but not as part of
/// `eprint!` or `sprint!`).
fn contains_macro(code: &str, token: &str) -> bool {
    code.match_indices(token).any(|(i, _)| {
        i == 0
            || !code[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Every rule over the workspace at `root`.
pub(crate) fn check_workspace(root: &Path) -> Vec<Violation> {
    let packages = match workspace_packages(root) {
        Ok(packages) => packages,
        Err(message) => {
            return vec![Violation {
                path: root.join("Cargo.toml"),
                message,
            }];
        }
    };
    let mut found = Vec::new();
    for dir in NO_HARNESS {
        for file in rust_files(&root.join(dir)) {
            if let Ok(source) = fs::read_to_string(&file) {
                found.extend(check_no_tests(&file, &source));
            }
        }
    }
    let crates_dir = root.join("crates");
    for package in &packages {
        found.extend(check_manifest(
            &package.name,
            &package.manifest,
            &package.dependencies,
        ));
        let Some(dir) = package.manifest.parent() else {
            continue;
        };
        if dir.parent() != Some(crates_dir.as_path()) {
            continue;
        }
        for file in rust_files(&dir.join("src")) {
            if let Ok(source) = fs::read_to_string(&file) {
                found.extend(check_source(&package.name, &file, &source));
                if package.name == "mongo-sim"
                    && let Ok(inside) = file.strip_prefix(dir.join("src"))
                    && let Some(first) = inside.components().next()
                {
                    let module = first.as_os_str().to_string_lossy();
                    let module = module.trim_end_matches(".rs");
                    found.extend(check_sim_layers(module, &file, &source));
                }
            }
        }
    }
    found.extend(check_docs(root, &packages));
    found
}

/// Rule 5: the items declared in one crate's source, by name: what a doc
/// path's last segment may be.
pub(crate) fn declared_names(source: &str) -> std::collections::BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "fn", "struct", "enum", "trait", "const", "type", "mod", "static", "union",
    ];
    let mut names = std::collections::BTreeSet::new();
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let words: Vec<&str> = code.split_whitespace().collect();
        for pair in words.windows(2) {
            if KEYWORDS.contains(&pair[0]) {
                let name = ident(pair[1]);
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        }
        // A field (`name: T,`) or a variant (`Name,`, `Name {`, `Name(`),
        // possibly `pub`.
        let rest = code
            .strip_prefix("pub(crate) ")
            .or_else(|| code.strip_prefix("pub "))
            .unwrap_or(code);
        let name = ident(rest);
        if !name.is_empty() {
            let after = rest[name.len()..].trim_start();
            if after.starts_with(':') && !after.starts_with("::")
                || after.starts_with(',')
                || after.starts_with('{')
                || after.starts_with('(')
                || after.is_empty() && name.starts_with(|c: char| c.is_ascii_uppercase())
            {
                names.insert(name);
            }
        }
    }
    names
}

/// Rule 5 for one document. `crates` maps a crate's name as code spells
/// it (`vault_transit`) to its declared names; a line naming a crate as a
/// heading (`` ### `crates/vault-transit` ``) or a table row's first cell
/// (`` | `vault-transit` | ``) makes it the crate relative paths are read
/// in.
pub(crate) fn check_doc_paths(
    path: &Path,
    text: &str,
    crates: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let named = if let Some(rest) = trimmed.strip_prefix("#") {
            rest.trim_start_matches('#')
                .trim()
                .trim_matches('`')
                .rsplit('/')
                .next()
                .map(str::to_owned)
        } else if let Some(rest) = trimmed.strip_prefix("| `") {
            rest.split('`').next().map(str::to_owned)
        } else {
            None
        };
        if let Some(name) = named {
            let name = name.replace('-', "_");
            if trimmed.starts_with('#') || crates.contains_key(&name) {
                current = crates.contains_key(&name).then_some(name);
            }
        }
        for span in line.split('`').skip(1).step_by(2) {
            let head: String = span
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let head = head.trim_end_matches(':');
            let segments: Vec<&str> = head.split("::").collect();
            if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
                continue;
            }
            let (krate, rest) = if crates.contains_key(segments[0]) {
                (segments[0].to_owned(), &segments[1..])
            } else {
                match &current {
                    Some(krate) if crates[krate].contains(segments[0]) => {
                        (krate.clone(), &segments[..])
                    }
                    _ => continue,
                }
            };
            let names = &crates[&krate];
            if let Some(missing) = rest.iter().find(|s| !names.contains(**s)) {
                found.push(Violation {
                    path: path.to_owned(),
                    message: format!(
                        "line {}: `{head}` names {missing}, which {krate} does not declare \
                         (renamed or removed? see xtask/src/tidy.rs, rule 5)",
                        number + 1
                    ),
                });
            }
        }
    }
    found
}

/// Rule 5 over the workspace: every crate's declared names, then the docs.
fn check_docs(root: &Path, packages: &[Package]) -> Vec<Violation> {
    let mut crates = std::collections::BTreeMap::new();
    for package in packages {
        let Some(dir) = package.manifest.parent() else {
            continue;
        };
        let mut names = std::collections::BTreeSet::new();
        for file in rust_files(&dir.join("src")) {
            if let Ok(source) = fs::read_to_string(&file) {
                names.extend(declared_names(&source));
            }
            // A module file declares its module's name.
            if let Some(stem) = file.file_stem() {
                names.insert(stem.to_string_lossy().into_owned());
            }
        }
        crates.insert(package.name.replace('-', "_"), names);
    }
    let mut found = Vec::new();
    for doc in ["ARCHITECTURE.md", "docs/library.md"] {
        if let Ok(text) = fs::read_to_string(root.join(doc)) {
            found.extend(check_doc_paths(&root.join(doc), &text, &crates));
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{
        check_doc_paths, check_manifest, check_no_tests, check_sim_layers, check_source,
        check_workspace, declared_names,
    };

    #[test]
    fn a_doc_path_to_a_missing_item_is_caught() {
        let source = "pub mod legacy;\npub struct OldVault {\n    pub storage: S,\n}\n\
                      pub enum Migrated {\n    Done(Report),\n    Refused,\n}\n\
                      pub(crate) async fn migrate() {}\n";
        let names = declared_names(source);
        for name in [
            "legacy", "OldVault", "storage", "Done", "Refused", "migrate",
        ] {
            assert!(names.contains(name), "{name}: {names:?}");
        }
        let crates = [("vault_transit".to_owned(), names)].into_iter().collect();
        let doc = "### `crates/vault-transit`\n\
                   `legacy::OldVault` and `Migrated::{Done, Refused}`, `std::env::var`,\n\
                   `legacy::NewVault`, `vault_transit::migrate(&Client)`, `vault_transit::gone`.\n\
                   ### `crates/other`\n`legacy::Nothing` is another crate's.\n";
        let found = check_doc_paths(Path::new("ARCHITECTURE.md"), doc, &crates);
        let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(found.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("line 3: `legacy::NewVault` names NewVault"));
        assert!(messages[1].starts_with("line 3: `vault_transit::gone` names gone"));
    }

    #[test]
    fn a_mongo_sim_module_using_a_higher_layer_is_caught() {
        let path = Path::new("crates/mongo-sim/src/node.rs");
        let source = "use crate::storage::Store;\nuse crate::commands::become_secondary;\n\
                      // crate::server in a comment\nfn f() { crate::peer::connect(); crate::node::x(); }\n";
        let found = check_sim_layers("node", path, source);
        let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(found.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("line 2: mongo-sim's node (layer 5) uses commands"));
        assert!(messages[1].starts_with("line 4: mongo-sim's node (layer 5) uses peer"));
        // Commands and replication are one layer: neither may use the other.
        assert_eq!(
            check_sim_layers("replication", path, "use crate::commands::x;\n").len(),
            1
        );
        assert!(check_sim_layers("server", path, "use crate::commands::x;\n").is_empty());
    }

    #[test]
    fn the_workspace_keeps_its_shape() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let violations = check_workspace(root);
        assert!(
            violations.is_empty(),
            "tidy:\n{}",
            violations
                .iter()
                .map(|v| format!("  {}: {}", v.path.display(), v.message))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// `(section, name)` pairs as [`super::Package::dependencies`] holds
    /// them: `"dev:ha-lab"` is a dev-dependency.
    fn deps(list: &[&str]) -> Vec<(String, String)> {
        list.iter()
            .map(|d| match d.split_once(':') {
                Some(("dev", name)) => ("dev-dependencies".to_owned(), name.to_owned()),
                Some(("build", name)) => ("build-dependencies".to_owned(), name.to_owned()),
                _ => ("dependencies".to_owned(), (*d).to_owned()),
            })
            .collect()
    }

    #[test]
    fn a_concern_crate_depending_on_config_or_binaries_is_caught() {
        let path = Path::new("crates/pg-provision/Cargo.toml");
        let manifest = deps(&["ha-config", "tokio", "dev:circle-ha", "dev:ha-lab"]);
        let found = check_manifest("pg-provision", path, &manifest);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0]
                .message
                .contains("depends on ha-config in [dependencies]")
        );
        assert!(
            found[1]
                .message
                .contains("depends on circle-ha in [dev-dependencies]")
        );
    }

    #[test]
    fn the_lab_as_a_normal_dependency_is_caught() {
        let path = Path::new("bins/Cargo.toml");
        let manifest = deps(&["ha-lab", "dev:ha-lab"]);
        let found = check_manifest("circle-ha", path, &manifest);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("only ever dev-dependencies"));
        assert_eq!(
            check_manifest("vault-transit", path, &deps(&["build:ha-lab"])).len(),
            1
        );
        assert!(check_manifest("ha-demo", path, &manifest).is_empty());
        let sim = deps(&["ha-tls", "dev:ha-tls"]);
        let found = check_manifest("mongo-sim", path, &sim);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("share nothing with the tools"));
    }

    #[test]
    fn a_config_key_or_a_decision_flag_in_a_concern_crate_is_caught() {
        let path = Path::new("crates/mongo-rs-setup/src/plan.rs");
        let source = "fn f() {\n    e(\"not in [mongo].members: add it\");\n    \
                      e(\"give the target (--mongo-uri)\");\n    e(\"--force-all and --dry-running\");\n    \
                      e(\"writes [services]\\n\");\n    \
                      u(\" --member {m}\"); // tidy: renders a command line\n}\n";
        let found = check_source("mongo-rs-setup", path, source);
        let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(found.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("line 2: [mongo]. in a concern crate"));
        assert!(messages[1].starts_with("line 3: --mongo-uri in a concern crate"));
        // ha-config and the binaries name them.
        assert!(
            check_source("ha-config", Path::new("crates/ha-config/src/x.rs"), source).is_empty()
        );
    }

    #[test]
    fn the_runbook_uses_every_concern_and_nothing_uses_it_but_config_and_binaries() {
        let path = Path::new("crates/ha-runbook/Cargo.toml");
        let concerns = deps(&["ha-plan", "mongo-rs-setup", "pg-provision", "vault-transit"]);
        assert!(check_manifest("ha-runbook", path, &concerns).is_empty());
        let found = check_manifest("ha-runbook", path, &deps(&["ha-config"]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .contains("ha-runbook (a concern crate) depends on ha-config")
        );
        let found = check_manifest("pg-provision", path, &deps(&["ha-runbook"]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .contains("no concern crate runs the runbook")
        );
        assert!(check_manifest("ha-config", path, &deps(&["ha-runbook"])).is_empty());
        let source = "let key = \"[vault].app_token_file\";\n";
        let found = check_source(
            "ha-runbook",
            Path::new("crates/ha-runbook/src/x.rs"),
            source,
        );
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn a_test_where_no_harness_runs_it_is_caught() {
        let path = Path::new("bins/src/bin/circle-ha.rs");
        let found = check_no_tests(
            path,
            "fn main() {}\n#[cfg(test)]\nmod tests {\n    #[test]\n",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0]
                .message
                .starts_with("line 2: a test in a target built without")
        );
        assert!(check_no_tests(path, "// #[test] in a comment\nfn main() {}\n").is_empty());
    }

    #[test]
    fn a_concern_edge_not_listed_is_caught() {
        let path = Path::new("crates/vault-transit/Cargo.toml");
        let found = check_manifest(
            "vault-transit",
            path,
            &deps(&["ha-plan", "ha-tls", "pg-provision", "dev:mongo-rs-setup"]),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .starts_with("vault-transit depends on pg-provision in [dependencies]: not one"),
            "{found:?}"
        );
        assert!(
            check_manifest(
                "ha-doctor",
                path,
                &deps(&["mongo-rs-setup", "pg-provision", "vault-transit"])
            )
            .is_empty()
        );
    }

    #[test]
    fn the_members_come_from_cargo_metadata() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let packages = super::workspace_packages(root).expect("cargo metadata");
        let export = packages
            .iter()
            .find(|p| p.name == "circle-export")
            .expect("circle-export is a member");
        assert!(export.manifest.ends_with("crates/circle-export/Cargo.toml"));
        assert!(
            export
                .dependencies
                .contains(&("dev-dependencies".to_owned(), "ha-lab".to_owned()))
        );
        assert!(packages.iter().any(|p| p.name == "xtask"));
    }

    #[test]
    fn tls_clients_prints_and_env_reads_in_libraries_are_caught() {
        let path = Path::new("crates/circle-export/src/mongo.rs");
        let source = "fn f() {\n    let c = rustls::ClientConfig::builder();\n    eprintln!(\"x\");\n    \
                      let v = std::env::var(\"HOME\");\n    // println!(\"in a comment\")\n    \
                      let s = sprint!(x);\n}\n#[cfg(test)]\nmod tests { fn t() { println!(); } }\n";
        let found = check_source("circle-export", path, source);
        let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(found.len(), 3, "{messages:?}");
        assert!(messages[0].starts_with("line 2: builds a rustls client configuration"));
        assert!(messages[1].starts_with("line 3: eprintln!"));
        assert!(messages[2].starts_with("line 4: env::var("));
        // The one place may build them; binaries may print.
        assert!(
            check_source("ha-tls", Path::new("crates/ha-tls/src/client.rs"), source).len() == 2
        );
        assert!(
            check_source("circle-export", Path::new("crates/x/src/bin/x.rs"), source).is_empty()
        );
    }
}
