//! `cargo xtask dist`: release binaries that start on the old Services
//! machine (an Ubuntu of CircleCI Server 2.x's era, glibc 2.27 or older),
//! in a tarball with shell completions, man pages, LICENSE and README.
//!
//! The binaries are built by `cargo zigbuild` for
//! `x86_64-unknown-linux-gnu.2.17`: zig's linker against glibc 2.17's
//! symbol versions, so nothing newer is required (the musl target would
//! need `rustup target add`, which this machine cannot fetch). `ziglang`
//! and `cargo-zigbuild` come from PyPI into a venv of their own under
//! `target/ha-tools/dist-venv`. The result is checked before it is
//! packed: no `GLIBC_` symbol version above 2.17 in any binary (read with
//! `objdump -T`), and each binary's `--version` runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaries shipped (package `circle-ha`).
pub(crate) const BINARIES: &[&str] = &[
    "circle-ha",
    "circle-export",
    "mongo-backup",
    "mongo-rs-setup",
    "pg-provision",
    "services-userdata",
    "vault-transit",
];

/// The newest glibc the binaries may need.
pub(crate) const GLIBC_FLOOR: (u32, u32) = (2, 17);

/// The Rust target, and the glibc cargo-zigbuild links against.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The build tools, pinned.
const DIST_REQUIREMENTS: &[&str] = &["ziglang==0.15.2", "cargo-zigbuild==0.24.1"];

/// Where the tarball and its unpacked tree go.
pub(crate) fn dist_dir(root: &Path) -> PathBuf {
    root.join("target/dist")
}

/// Builds, checks and packs; returns the tarball's path.
pub(crate) fn dist(root: &Path) -> Result<PathBuf, String> {
    let venv_bin = install_tools(root)?;
    let mut path = vec![venv_bin];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(path).map_err(|e| e.to_string())?;
    let zig_target = format!("{TARGET}.{}.{}", GLIBC_FLOOR.0, GLIBC_FLOOR.1);
    eprintln!("xtask: building release binaries for {zig_target} (cargo zigbuild)");
    let mut build = Command::new(crate::cargo());
    build
        .args([
            "zigbuild",
            "--release",
            "--locked",
            "--package",
            "circle-ha",
            "--bins",
            "--target",
            &zig_target,
        ])
        .current_dir(root)
        .env("PATH", &path);
    crate::run(&mut build)?;
    let built = root.join("target").join(TARGET).join("release");

    let version = workspace_version(root)?;
    let name = format!("circle-ha-{version}-x86_64-linux-gnu");
    let stage = dist_dir(root).join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(|e| format!("{}: {e}", stage.display()))?;
    }
    let bin = stage.join("bin");
    fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    for binary in BINARIES {
        let to = bin.join(binary);
        fs::copy(built.join(binary), &to)
            .map_err(|e| format!("{}: {e}", built.join(binary).display()))?;
        // Completions and man pages, from the binary itself.
        crate::run(Command::new(&to).env("CIRCLE_HA_DIST_DOCS", &stage))?;
    }
    for file in ["README.md", "LICENSE"] {
        fs::copy(root.join(file), stage.join(file)).map_err(|e| format!("{file}: {e}"))?;
    }
    let problems = check_tree(&stage);
    if !problems.is_empty() {
        return Err(format!(
            "the dist binaries fail their check:\n  {}",
            problems.join("\n  ")
        ));
    }
    let tarball = dist_dir(root).join(format!("{name}.tar.gz"));
    crate::run(
        Command::new("tar")
            .arg("-C")
            .arg(dist_dir(root))
            .arg("-czf")
            .arg(&tarball)
            .arg(&name),
    )?;
    for binary in BINARIES {
        let size = fs::metadata(bin.join(binary)).map_or(0, |m| m.len());
        eprintln!(
            "xtask: {binary:<18} {:>6.1} MiB, needs glibc {}",
            size as f64 / (1024.0 * 1024.0),
            glibc_needed(&bin.join(binary)).ok().flatten().map_or_else(
                || "none (static)".to_owned(),
                |(a, b, c)| format!("{a}.{b}.{c}")
            )
        );
    }
    let size = fs::metadata(&tarball).map_or(0, |m| m.len());
    eprintln!(
        "xtask: wrote {} ({:.1} MiB)",
        tarball.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(tarball)
}

fn install_tools(root: &Path) -> Result<PathBuf, String> {
    crate::install_venv_at(
        &root.join("target/ha-tools/dist-venv"),
        DIST_REQUIREMENTS,
        &["cargo-zigbuild", "python3"],
    )
}

fn workspace_version(root: &Path) -> Result<String, String> {
    let text = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix("version = \"")?;
            Some(value.trim_end_matches('"').to_owned())
        })
        .ok_or_else(|| "no version in the workspace's Cargo.toml".to_owned())
}

/// The newest `GLIBC_x.y[.z]` symbol version in `objdump -T` output, or
/// `None` when it names none (a static binary).
pub(crate) fn newest_glibc(objdump: &str) -> Option<(u32, u32, u32)> {
    objdump
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(|p| p.parse::<u32>());
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(Ok(a)), Some(Ok(b)), None, None) => Some((a, b, 0)),
                (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Some((a, b, c)),
                _ => None,
            }
        })
        .max()
}

/// The newest glibc `binary` needs (`objdump -T`), `None` for a static
/// one.
pub(crate) fn glibc_needed(binary: &Path) -> Result<Option<(u32, u32, u32)>, String> {
    let output = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run objdump: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A static binary has no dynamic symbol table.
        if stderr.contains("not a dynamic object") || stderr.contains("no dynamic symbol") {
            return Ok(None);
        }
        return Err(format!(
            "objdump -T {}: {}",
            binary.display(),
            stderr.trim()
        ));
    }
    Ok(newest_glibc(&text))
}

/// Every problem of the dist tree at `stage`: a binary missing, one that
/// needs a glibc newer than [`GLIBC_FLOOR`], one whose `--version` does
/// not run.
pub(crate) fn check_tree(stage: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for binary in BINARIES {
        let path = stage.join("bin").join(binary);
        if !path.exists() {
            problems.push(format!("{}: missing", path.display()));
            continue;
        }
        match glibc_needed(&path) {
            Ok(Some((a, b, c))) if (a, b) > GLIBC_FLOOR => problems.push(format!(
                "{binary} needs glibc {a}.{b}.{c}, above the {}.{} floor",
                GLIBC_FLOOR.0, GLIBC_FLOOR.1
            )),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        match Command::new(&path).arg("--version").output() {
            Ok(out)
                if out.status.success()
                    && String::from_utf8_lossy(&out.stdout).starts_with(binary) => {}
            Ok(out) => problems.push(format!(
                "{binary} --version: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            )),
            Err(e) => problems.push(format!("{binary} --version: {e}")),
        }
        for page in [
            format!("man/{binary}.1"),
            format!("completions/{binary}.bash"),
        ] {
            if !stage.join(&page).exists() {
                problems.push(format!("{binary}: no {page}"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::newest_glibc;

    #[test]
    fn the_newest_glibc_version_is_read_from_objdump_output() {
        let text = "\
target/x:     file format elf64-x86-64

DYNAMIC SYMBOL TABLE:
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) memcpy
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.17) clock_gettime
0000000000000000      DF *UND*  0000000000000000  GLIBC_2.3.4 __sprintf_chk
0000000000000000      DO *UND*  0000000000000000 (GLIBC_PRIVATE) _rtld_global
";
        assert_eq!(newest_glibc(text), Some((2, 17, 0)));
        let newer = format!("{text}0000 DF *UND* 0000 (GLIBC_2.34) __libc_start_main\n");
        assert_eq!(newest_glibc(&newer), Some((2, 34, 0)));
        assert!(newest_glibc(&newer).unwrap() > (2, 17, 0));
        assert_eq!(newest_glibc("not a dynamic object"), None);
    }

    /// When `cargo xtask dist` has run, its output must pass the check
    /// (the glibc floor, `--version`, the pages); without it there is
    /// nothing to check, and the test says how to make it.
    #[test]
    fn dist_output_when_present_meets_the_glibc_floor_and_runs() {
        let root = crate::workspace_root();
        let Ok(entries) = std::fs::read_dir(super::dist_dir(&root)) else {
            eprintln!(
                "no dist output under target/dist (run `cargo xtask dist` to make and check it)"
            );
            return;
        };
        let mut checked = 0;
        for entry in entries.flatten() {
            if entry.path().join("bin").is_dir() {
                let problems = super::check_tree(&entry.path());
                assert!(problems.is_empty(), "{}", problems.join("\n"));
                checked += 1;
            }
        }
        eprintln!("checked {checked} dist tree(s)");
    }
}
