//! `vault-transit` run as an operator would, against a real OpenBao.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ha_lab::{LabPki, OpenBao, Toolbox};
use serde_json::Value;

use crate::run;

pub(crate) struct Setup {
    _pki: LabPki,
    bao: OpenBao,
    dir: tempfile::TempDir,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        let pki = LabPki::new().unwrap();
        let bao = OpenBao::start(&Toolbox::discover(std::env::vars_os()), &pki).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ha.toml"),
            format!(
                "[vault]\naddress = \"{}\"\nca_file = \"{}\"\nsecret_shares = 5\n\
                 secret_threshold = 3\nkeys_dir = \"secrets/vault\"\n\
                 admin_token = \"file:secrets/vault/root-token\"\n\
                 app_token_file = \"secrets/vault/circleci-token\"\n\
                 transit_mount = \"transit\"\ntoken_period = \"1h\"\n",
                bao.addr(),
                bao.ca_file().display()
            ),
        )
        .unwrap();
        Setup {
            _pki: pki,
            bao,
            dir,
        }
    }

    pub(crate) fn vault_transit(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vault-transit"));
        command
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("ha.toml"));
        command
    }

    /// A client of this OpenBao and the root token `init` wrote.
    pub(crate) fn admin(&self) -> (vault_transit::Client, secrecy::SecretString) {
        let ca = self.bao.ca_file();
        let trust = vault_transit::Trust::Ca {
            pem: std::fs::read(&ca).unwrap(),
            path: ca.display().to_string(),
        };
        let client = vault_transit::Client::with_resolved_addr(
            &self.bao.addr(),
            &trust,
            ([127, 0, 0, 1], self.bao.port()).into(),
        )
        .unwrap();
        let token = std::fs::read_to_string(self.keys_dir().join("root-token")).unwrap();
        (client, token.trim().to_owned().into())
    }

    pub(crate) fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("secrets/vault")
    }

    /// Every secret on disk: key shares, root token, app token.
    fn secrets(&self) -> Vec<String> {
        std::fs::read_dir(self.keys_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap().trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn assert_no_secret(&self, texts: &[&str]) {
        for secret in self.secrets() {
            for text in texts {
                assert!(
                    !text.contains(&secret),
                    "a secret leaked into output: {text}"
                );
            }
        }
    }
}

pub(crate) fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_runbook_from_init_to_sealed_and_back() {
    let setup = Setup::new();
    let (code, stdout, _) = run(&mut setup.vault_transit(&["status", "--json"]));
    assert_eq!(code, 3);
    assert_eq!(json(&stdout)["initialized"], false);

    let (code, stdout, stderr) = run(&mut setup.vault_transit(&["init", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["changed"], 1);
    assert_eq!(json(&stdout)["files"].as_array().unwrap().len(), 6);
    for entry in std::fs::read_dir(setup.keys_dir()).unwrap().flatten() {
        assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
    }
    setup.assert_no_secret(&[&stdout, &stderr]);

    let (code, _, stderr) = run(&mut setup.vault_transit(&["init"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("already initialised"), "{stderr}");

    let (code, stdout, stderr) = run(&mut setup.vault_transit(&["unseal"]));
    assert_eq!(code, 0, "{stderr}");
    // Progress on stderr, the result on stdout.
    assert!(stderr.contains("unseal progress 2/3"), "{stderr}");
    assert!(stdout.contains("unsealed"), "{stdout}");
    let (code, stdout2, _) = run(&mut setup.vault_transit(&["unseal", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(json(&stdout2)["changed"], 0);
    setup.assert_no_secret(&[&stdout, &stderr]);

    let (code, stdout, stderr) =
        run(&mut setup.vault_transit(&["configure", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["planned"], 3);
    assert_eq!(json(&stdout)["changed"], 0);
    assert!(!setup.keys_dir().join("circleci-token").exists());

    let (code, stdout, stderr) = run(&mut setup.vault_transit(&["configure", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["changed"], 3);
    let token_file = setup.keys_dir().join("circleci-token");
    assert_eq!(mode(&token_file), 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();

    let (code, stdout, stderr) = run(&mut setup.vault_transit(&["configure", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["changed"], 0);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);

    let (code, stdout, stderr) = run(&mut setup.vault_transit(&["verify", "--json"]));
    assert_eq!(code, 0, "{stderr}{stdout}");
    assert_eq!(json(&stdout)["healthy"], true);
    setup.assert_no_secret(&[&stdout, &stderr]);

    let (code, stdout, stderr) = run(&mut setup.vault_transit(&["seal", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["changed"], 1, "{stdout}");
    let (code, stdout, _) = run(&mut setup.vault_transit(&["status"]));
    assert_eq!(code, 3);
    assert!(stdout.contains("sealed, unseal progress 0/3"), "{stdout}");
    let (code, stdout, _) = run(&mut setup.vault_transit(&["verify"]));
    assert_eq!(code, 3);
    assert!(stdout.contains("Vault is sealed"), "{stdout}");

    // Key holders pipe their shares in.
    let shares: Vec<String> = [2, 3, 5]
        .iter()
        .map(|i| std::fs::read_to_string(setup.keys_dir().join(format!("unseal-key-{i}"))).unwrap())
        .collect();
    let mut child = setup
        .vault_transit(&["unseal", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(shares.concat().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    setup.assert_no_secret(&[&stderr]);
    let (code, _, _) = run(&mut setup.vault_transit(&["verify"]));
    assert_eq!(code, 0);
    drop(setup.bao);
}

#[test]
fn bad_configuration_exits_2_before_contacting_vault() {
    let setup = Setup::new();
    std::fs::write(
        setup.dir.path().join("ha.toml"),
        "[vault]\naddress = \"vault.internal:8200\"\nsecret_shares = 3\nsecret_threshold = 4\n\
         admin_token = \"s.hvs-literal-token\"\n[vault.server]\nflavor = \"openbao\"\n\
         storage = \"file\"\npath = \"/vault\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&mut setup.vault_transit(&["status"]));
    assert_eq!(code, 2);
    for needle in [
        "must start with https://",
        "[vault].ca_file is missing",
        "secret_threshold 4 is larger than secret_shares 3",
        "[vault].admin_token must be a secret reference",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?}: {stderr}");
    }
    assert!(!stderr.contains("s.hvs-literal-token"));
    let (code, stdout, stderr) = run(&mut setup.vault_transit(&["render-config"]));
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("unknown storage type file"), "{stderr}");
}
