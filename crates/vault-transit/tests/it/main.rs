//! vault-transit against a real OpenBao over TLS.

mod flow;
mod migrate;
mod render;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ha_lab::{LabPki, OpenBao, Toolbox};
use vault_transit::{Client, Trust};

struct Lab {
    _pki: LabPki,
    bao: OpenBao,
}

impl Lab {
    fn start() -> Lab {
        let pki = LabPki::new().unwrap();
        let bao = OpenBao::start(&Toolbox::discover(std::env::vars_os()), &pki).unwrap();
        Lab { _pki: pki, bao }
    }

    fn client(&self) -> Client {
        client_for(&self.bao.addr(), &self.bao.ca_file(), self.bao.port())
    }
}

fn client_for(address: &str, ca_file: &Path, port: u16) -> Client {
    let trust = Trust::Ca {
        pem: std::fs::read(ca_file).unwrap(),
        path: ca_file.display().to_string(),
    };
    Client::with_resolved_addr(address, &trust, ([127, 0, 0, 1], port).into()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
