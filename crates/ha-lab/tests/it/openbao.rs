//! OpenBao: real server over TLS, uninitialised and sealed.

use ha_lab::OpenBao;

use crate::{pki, tools, verifying_tls};

#[tokio::test]
async fn answers_seal_status_over_tls() {
    let pki = pki();
    let bao = OpenBao::start(&tools(), &pki).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*verifying_tls(&bao.ca_file())).clone())
        .resolve("localhost", ([127, 0, 0, 1], bao.port()).into())
        .build()
        .unwrap();
    let status: serde_json::Value = client
        .get(format!("{}/v1/sys/seal-status", bao.addr()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["initialized"], false, "{status}");
    assert_eq!(status["sealed"], true, "{status}");
    assert_eq!(status["storage_type"], "raft", "{status}");

    // Plain HTTP is not served: the listener is TLS-only.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/v1/sys/seal-status",
            bao.port()
        ))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status() == reqwest::StatusCode::BAD_REQUEST,
        "plain HTTP must not get an answer"
    );
}
