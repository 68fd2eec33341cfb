//! The server's own configuration file (`vault.hcl`). Pure.
//!
//! The runbook's example mixes keys of two storage backends (`address`, a
//! Consul key, inside `storage "file"`) and disables TLS. This renders one
//! valid storage stanza for the chosen backend, a TLS listener by default,
//! and `api_addr`/`cluster_addr`, and refuses combinations the chosen server
//! rejects.

use std::fmt::Write as _;

/// Which server the file is for: they accept different stanzas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// OpenBao 2.x: raft or postgresql storage only; no `disable_mlock`.
    OpenBao,
    /// HashiCorp Vault 1.4 or later.
    Vault,
    /// HashiCorp Vault 0.7, the version the runbook pins: no raft storage.
    Vault07,
}

impl Flavor {
    /// Parses `openbao`, `vault` or `vault-0.7`.
    pub fn parse(text: &str) -> Option<Flavor> {
        match text {
            "openbao" => Some(Flavor::OpenBao),
            "vault" => Some(Flavor::Vault),
            "vault-0.7" => Some(Flavor::Vault07),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavor::OpenBao => "OpenBao 2.x",
            Flavor::Vault => "Vault",
            Flavor::Vault07 => "Vault 0.7",
        }
    }
}

/// The storage backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// HashiCorp Consul (Vault only): HA through Consul.
    Consul {
        /// Consul's `host:port`.
        address: String,
        /// Key prefix in Consul; no leading `/` (the runbook's note).
        path: String,
    },
    /// A directory on one node (Vault only; no HA).
    File {
        /// Absolute path.
        path: String,
    },
    /// Integrated storage (Vault 1.4+, OpenBao): HA with 3 or 5 nodes.
    Raft {
        /// Absolute path.
        path: String,
        /// This node's id in the Raft cluster.
        node_id: String,
    },
}

/// Everything the server configuration needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfigSpec {
    /// Which server reads it.
    pub flavor: Flavor,
    /// The storage backend.
    pub storage: Storage,
    /// Listener address, e.g. `0.0.0.0:8200`.
    pub listen_address: String,
    /// Cluster listener address, e.g. `0.0.0.0:8201`.
    pub cluster_listen_address: String,
    /// The address clients use, e.g. `https://vault.internal:8200`.
    pub api_addr: String,
    /// The address other nodes use, e.g. `https://vault.internal:8201`.
    pub cluster_addr: String,
    /// Certificate and key files for the listener; `None` turns TLS off,
    /// which is refused unless `allow_plain_http`.
    pub tls: Option<(String, String)>,
    /// Accept `tls: None` (test instances only; tokens travel in clear).
    pub allow_plain_http: bool,
    /// Unseal with an AWS KMS key instead of Shamir shares (Vault 1.0 and
    /// later, OpenBao); `None` keeps the runbook's shares.
    pub seal: Option<AwsKmsSeal>,
}

/// `seal "awskms"`: the server unseals itself with this KMS key. The
/// credentials are the instance profile's (or the environment's), never
/// the file's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsKmsSeal {
    /// The key's region.
    pub region: String,
    /// The key: id, ARN or alias.
    pub kms_key_id: String,
    /// A KMS endpoint (a VPC endpoint), if not the region's.
    pub endpoint: Option<String>,
}

/// A rendered configuration and warnings worth showing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedConfig {
    /// The HCL text.
    pub text: String,
    /// Things the operator should know.
    pub warnings: Vec<String>,
}

/// Renders the configuration, or lists every reason the chosen server would
/// reject it.
pub fn render_server_config(spec: &ServerConfigSpec) -> Result<RenderedConfig, Vec<String>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut text = String::from("# Rendered by vault-transit render-config.\n");

    match (&spec.storage, spec.flavor) {
        (Storage::File { .. } | Storage::Consul { .. }, Flavor::OpenBao) => {
            let name = if matches!(spec.storage, Storage::File { .. }) {
                "file"
            } else {
                "consul"
            };
            problems.push(format!(
                "{} has no {name} storage (it fails with \"unknown storage type {name}\"); use \
                 raft",
                spec.flavor.name()
            ));
        }
        (Storage::Raft { .. }, Flavor::Vault07) => problems.push(
            "Vault 0.7 has no raft (integrated) storage, which arrived in Vault 1.2 and was \
             supported from 1.4; use consul for HA or file for one node"
                .to_owned(),
        ),
        _ => {}
    }
    match &spec.storage {
        Storage::Consul { address, path } => {
            if path.starts_with('/') {
                problems.push(format!(
                    "consul path {path:?} must not start with '/' (Consul keys are relative)"
                ));
            }
            let _ = writeln!(text, "storage \"consul\" {{");
            let _ = writeln!(text, "  address = {}", hcl_string(address));
            let _ = writeln!(text, "  path    = {}", hcl_string(path));
            let _ = writeln!(text, "}}");
        }
        Storage::File { path } => {
            require_absolute(&mut problems, "file storage path", path);
            warnings.push(
                "file storage serves a single node: no high availability; use consul (Vault) or \
                 raft for HA"
                    .to_owned(),
            );
            let _ = writeln!(text, "storage \"file\" {{");
            let _ = writeln!(text, "  path = {}", hcl_string(path));
            let _ = writeln!(text, "}}");
        }
        Storage::Raft { path, node_id } => {
            require_absolute(&mut problems, "raft storage path", path);
            if node_id.is_empty() {
                problems.push("raft needs a node_id".to_owned());
            }
            let _ = writeln!(text, "storage \"raft\" {{");
            let _ = writeln!(text, "  path    = {}", hcl_string(path));
            let _ = writeln!(text, "  node_id = {}", hcl_string(node_id));
            let _ = writeln!(text, "}}");
        }
    }

    let _ = writeln!(text, "\nlistener \"tcp\" {{");
    let _ = writeln!(
        text,
        "  address         = {}",
        hcl_string(&spec.listen_address)
    );
    let _ = writeln!(
        text,
        "  cluster_address = {}",
        hcl_string(&spec.cluster_listen_address)
    );
    match &spec.tls {
        Some((cert, key)) => {
            let _ = writeln!(text, "  tls_cert_file   = {}", hcl_string(cert));
            let _ = writeln!(text, "  tls_key_file    = {}", hcl_string(key));
            if !spec.api_addr.starts_with("https://") {
                problems.push(format!(
                    "api_addr {:?} must start with https:// when the listener uses TLS",
                    spec.api_addr
                ));
            }
        }
        None => {
            if spec.allow_plain_http {
                warnings.push(
                    "TLS is off: tokens and key shares cross the network in clear text; only for \
                     a test instance"
                        .to_owned(),
                );
                let _ = writeln!(text, "  tls_disable     = true");
            } else {
                problems.push(
                    "the listener needs a TLS certificate and key (tls_cert_file, tls_key_file); \
                     plain HTTP must be asked for explicitly"
                        .to_owned(),
                );
            }
        }
    }
    let _ = writeln!(text, "}}\n");
    if let Some(seal) = &spec.seal {
        if spec.flavor == Flavor::Vault07 {
            problems.push(
                "Vault 0.7 has no awskms seal (auto-unseal came to open-source Vault in 1.0); \
                 use Shamir shares, or OpenBao or a current Vault"
                    .to_owned(),
            );
        }
        if seal.kms_key_id.is_empty() || seal.region.is_empty() {
            problems.push("the awskms seal needs a region and a kms_key_id".to_owned());
        }
        warnings.push(
            "with the awskms seal the server unseals itself with the KMS key (its instance \
             profile needs kms:Encrypt, kms:Decrypt and kms:DescribeKey on it) and is \
             initialised with recovery shares: `bao operator init -recovery-shares 5 \
             -recovery-threshold 3`, not `vault-transit init`"
                .to_owned(),
        );
        let _ = writeln!(text, "seal \"awskms\" {{");
        let _ = writeln!(text, "  region     = {}", hcl_string(&seal.region));
        let _ = writeln!(text, "  kms_key_id = {}", hcl_string(&seal.kms_key_id));
        if let Some(endpoint) = &seal.endpoint {
            let _ = writeln!(text, "  endpoint   = {}", hcl_string(endpoint));
        }
        let _ = writeln!(text, "}}\n");
    }
    let _ = writeln!(text, "api_addr     = {}", hcl_string(&spec.api_addr));
    let _ = writeln!(text, "cluster_addr = {}", hcl_string(&spec.cluster_addr));
    match spec.flavor {
        Flavor::OpenBao => {}
        Flavor::Vault if matches!(spec.storage, Storage::Raft { .. }) => {
            let _ = writeln!(
                text,
                "# Vault recommends disabling mlock with integrated storage (its data is \
                 memory-mapped).\ndisable_mlock = true"
            );
        }
        Flavor::Vault | Flavor::Vault07 => {}
    }
    let _ = writeln!(text, "ui = false");

    if problems.is_empty() {
        Ok(RenderedConfig { text, warnings })
    } else {
        Err(problems)
    }
}

fn require_absolute(problems: &mut Vec<String>, what: &str, path: &str) {
    if !path.starts_with('/') {
        problems.push(format!("{what} {path:?} must be absolute"));
    }
}

/// An HCL string literal: quotes and backslashes escaped, `${` and `%{`
/// escaped so no interpolation happens.
fn hcl_string(value: &str) -> String {
    let mut res = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => res.push_str("\\\""),
            '\\' => res.push_str("\\\\"),
            '\n' => res.push_str("\\n"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                res.push(c);
                res.push(c);
            }
            c => res.push(c),
        }
    }
    res.push('"');
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(flavor: Flavor, storage: Storage) -> ServerConfigSpec {
        ServerConfigSpec {
            flavor,
            storage,
            listen_address: "0.0.0.0:8200".to_owned(),
            cluster_listen_address: "0.0.0.0:8201".to_owned(),
            api_addr: "https://vault.internal:8200".to_owned(),
            cluster_addr: "https://vault.internal:8201".to_owned(),
            tls: Some((
                "/etc/vault/vault.crt".to_owned(),
                "/etc/vault/vault.key".to_owned(),
            )),
            allow_plain_http: false,
            seal: None,
        }
    }

    #[test]
    fn consul_for_vault_renders_one_valid_stanza() {
        let rendered = render_server_config(&spec(
            Flavor::Vault07,
            Storage::Consul {
                address: "127.0.0.1:8500".to_owned(),
                path: "vault".to_owned(),
            },
        ))
        .unwrap();
        assert_eq!(
            rendered.text,
            "# Rendered by vault-transit render-config.\n\
             storage \"consul\" {\n  address = \"127.0.0.1:8500\"\n  path    = \"vault\"\n}\n\n\
             listener \"tcp\" {\n  address         = \"0.0.0.0:8200\"\n  cluster_address = \
             \"0.0.0.0:8201\"\n  tls_cert_file   = \"/etc/vault/vault.crt\"\n  tls_key_file    = \
             \"/etc/vault/vault.key\"\n}\n\n\
             api_addr     = \"https://vault.internal:8200\"\n\
             cluster_addr = \"https://vault.internal:8201\"\nui = false\n"
        );
    }

    #[test]
    fn combinations_the_server_rejects_are_refused_all_at_once() {
        let mut bad = spec(
            Flavor::OpenBao,
            Storage::File {
                path: "vault".to_owned(),
            },
        );
        bad.tls = None;
        let problems = render_server_config(&bad).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("unknown storage type file"));
        assert!(problems[1].contains("must be absolute"));
        assert!(problems[2].contains("TLS certificate"));

        let problems = render_server_config(&spec(
            Flavor::Vault07,
            Storage::Raft {
                path: "/var/lib/vault".to_owned(),
                node_id: "a".to_owned(),
            },
        ))
        .unwrap_err();
        assert!(problems[0].contains("Vault 0.7 has no raft"));

        let problems = render_server_config(&spec(
            Flavor::Vault,
            Storage::Consul {
                address: "127.0.0.1:8500".to_owned(),
                path: "/vault".to_owned(),
            },
        ))
        .unwrap_err();
        assert!(problems[0].contains("must not start with '/'"));
    }

    #[test]
    fn strings_cannot_break_out_of_hcl() {
        assert_eq!(hcl_string("a\"b\\c${x}%{y}"), "\"a\\\"b\\\\c$${x}%%{y}\"");
    }

    #[test]
    fn an_awskms_seal_is_rendered_for_the_servers_that_have_it() {
        let mut with_kms = spec(
            Flavor::OpenBao,
            Storage::Raft {
                path: "/var/lib/openbao".to_owned(),
                node_id: "bao-1".to_owned(),
            },
        );
        with_kms.seal = Some(AwsKmsSeal {
            region: "us-east-1".to_owned(),
            kms_key_id: "alias/circleci-vault".to_owned(),
            endpoint: None,
        });
        let rendered = render_server_config(&with_kms).unwrap();
        assert!(
            rendered.text.contains(
                "seal \"awskms\" {\n  region     = \"us-east-1\"\n  kms_key_id = \"alias/circleci-vault\"\n}"
            ),
            "{}",
            rendered.text
        );
        assert!(!rendered.text.contains("secret_key"), "{}", rendered.text);
        assert!(
            rendered
                .warnings
                .iter()
                .any(|w| w.contains("recovery shares"))
        );
        with_kms.flavor = Flavor::Vault07;
        with_kms.storage = Storage::File {
            path: "/vault/file".to_owned(),
        };
        let problems = render_server_config(&with_kms).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("no awskms seal")),
            "{problems:?}"
        );
    }
}
