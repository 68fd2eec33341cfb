//! Each lab service started for real and spoken to through a real client,
//! over TLS wherever the service speaks TLS.

mod mongo;
mod moto;
mod openbao;
mod postgres;

use std::sync::Arc;

use ha_lab::{LabPki, Toolbox};

fn tools() -> Toolbox {
    Toolbox::discover(std::env::vars_os())
}

/// A rustls client configuration that trusts only `ca_file` and verifies
/// host names: what production clients do.
fn verifying_tls(ca_file: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(ca_file).unwrap();
    Arc::new(
        ha_tls::client_config(
            Some((&pem, &ca_file.display().to_string())),
            ha_tls::ServerVerification::Full,
            None,
        )
        .unwrap(),
    )
}

fn pki() -> LabPki {
    LabPki::new().unwrap()
}
