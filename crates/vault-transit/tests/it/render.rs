//! The rendered server configuration starts a real OpenBao.

use ha_lab::{LabPki, OpenBao, Toolbox, free_port};
use vault_transit::{Flavor, ServerConfigSpec, Storage, render_server_config};

use crate::client_for;

#[tokio::test]
async fn rendered_raft_config_starts_openbao_with_tls() {
    let pki = LabPki::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let raft = dir.path().join("raft");
    std::fs::create_dir(&raft).unwrap();
    let port = free_port().unwrap();
    let cluster_port = free_port().unwrap();
    let spec = ServerConfigSpec {
        flavor: Flavor::OpenBao,
        storage: Storage::Raft {
            path: raft.display().to_string(),
            node_id: "vault-1".to_owned(),
        },
        listen_address: format!("127.0.0.1:{port}"),
        cluster_listen_address: format!("127.0.0.1:{cluster_port}"),
        api_addr: format!("https://localhost:{port}"),
        cluster_addr: format!("https://localhost:{cluster_port}"),
        tls: Some((
            pki.server().cert.display().to_string(),
            pki.server().key.display().to_string(),
        )),
        allow_plain_http: false,
        seal: None,
    };
    let rendered = render_server_config(&spec).unwrap();
    assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
    let _bao = OpenBao::start_with_config(
        &Toolbox::discover(std::env::vars_os()),
        dir.path(),
        &rendered.text,
        port,
    )
    .unwrap();
    let log = std::fs::read_to_string(dir.path().join("bao.log")).unwrap();
    assert!(!log.contains("unknown or unsupported field"), "{log}");

    let client = client_for(&spec.api_addr, &pki.ca_file(), port);
    let status = vault_transit::seal_status(&client).await.unwrap();
    assert!(status.sealed);
    assert_eq!(status.storage_type.as_deref(), Some("raft"));
    assert!(!vault_transit::is_initialized(&client).await.unwrap());
}
