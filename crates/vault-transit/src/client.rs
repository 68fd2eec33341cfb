//! A small Vault HTTP API client: JSON in, JSON out, errors in words.
//!
//! Every endpoint used exists with the same shape from Vault 0.7 to current
//! Vault and OpenBao. Responses are parsed leniently (unknown fields are
//! ignored, newer fields optional).

use std::fmt;
use std::time::Duration;

use ha_plan::error_chain;
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::Error;

/// How a client checks Vault's certificate.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Trust the CA certificates in this PEM bundle (path for messages).
    Ca {
        /// The PEM bytes.
        pem: Vec<u8>,
        /// Where they came from.
        path: String,
    },
    /// Trust no one and check nothing: only with the explicit
    /// `--danger-skip-tls-verify` style opt-out, or for `http://` addresses.
    DangerAcceptAnyCertificate,
}

/// A connection to one Vault server.
#[derive(Clone)]
pub struct Client {
    address: String,
    http: reqwest::Client,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `address` (`https://host:8200`; `http://` only for test
    /// servers), verifying TLS per `trust`.
    pub fn new(address: &str, trust: &Trust) -> Result<Client, Error> {
        Client::build(address, trust, None)
    }

    /// Like [`Client::new`], but connects to `addr` whatever `address`'s host
    /// resolves to (TLS still verifies the host name). For tests and for
    /// hosts whose DNS is not set up yet.
    pub fn with_resolved_addr(
        address: &str,
        trust: &Trust,
        addr: std::net::SocketAddr,
    ) -> Result<Client, Error> {
        Client::build(address, trust, Some(addr))
    }

    fn build(
        address: &str,
        trust: &Trust,
        resolve_to: Option<std::net::SocketAddr>,
    ) -> Result<Client, Error> {
        let address = address.trim_end_matches('/').to_owned();
        let (ca, verification) = match trust {
            Trust::Ca { pem, path } => (
                Some((pem.as_slice(), path.as_str())),
                ha_tls::ServerVerification::Full,
            ),
            Trust::DangerAcceptAnyCertificate => {
                (None, ha_tls::ServerVerification::DangerAcceptAnyCertificate)
            }
        };
        let tls = ha_tls::client_config(ca, verification, None).map_err(Error::Tls)?;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(15));
        if let Some(addr) = resolve_to {
            let host = reqwest::Url::parse(&address)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_default();
            builder = builder.resolve(&host, addr);
        }
        let http = builder.build().map_err(|source| Error::Client {
            address: address.clone(),
            source,
        })?;
        Ok(Client { address, http })
    }

    /// The server's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends a request to `/v1/<path>` and returns the parsed body of a 2xx
    /// answer (`Value::Null` for 204), or an [`Error::Api`] explaining the
    /// status.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let method_name = method_name(&method);
        let url = format!("{}/v1/{path}", self.address);
        let mut request = self.http.request(method, &url);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Error::Transport {
            method: method_name,
            address: self.address.clone(),
            path: path.to_owned(),
            detail: error_chain(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| Error::Transport {
            method: method_name,
            address: self.address.clone(),
            path: path.to_owned(),
            detail: error_chain(&e),
        })?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok(body);
        }
        let errors: Vec<String> = body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Err(Error::Api {
            method: method_name,
            address: self.address.clone(),
            path: path.to_owned(),
            status: status.as_u16(),
            explanation: explain(status.as_u16(), path, &errors),
            errors,
        })
    }

    /// `GET /v1/<path>`, returning the JSON body.
    pub async fn get(&self, path: &str, token: Option<&SecretString>) -> Result<Value, Error> {
        self.call(Method::GET, path, token, None).await
    }

    /// `LIST /v1/<path>` (as `GET …?list=true`, which every version
    /// accepts), returning the JSON body.
    pub async fn list(&self, path: &str, token: Option<&SecretString>) -> Result<Value, Error> {
        self.call(Method::GET, &format!("{path}?list=true"), token, None)
            .await
    }

    /// `PUT /v1/<path>` with a JSON body, returning the JSON body
    /// (`Value::Null` for 204).
    pub async fn put(
        &self,
        path: &str,
        token: Option<&SecretString>,
        body: &Value,
    ) -> Result<Value, Error> {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// `DELETE /v1/<path>`, returning the JSON body (`Value::Null` for
    /// 204).
    pub async fn delete(&self, path: &str, token: Option<&SecretString>) -> Result<Value, Error> {
        self.call(Method::DELETE, path, token, None).await
    }

    pub(crate) fn response_error(&self, method: &'static str, path: &str, detail: &str) -> Error {
        Error::Response {
            method,
            address: self.address.clone(),
            path: path.to_owned(),
            detail: detail.to_owned(),
        }
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "LIST",
    }
}

/// Says what an error status means for Vault, in the operator's terms.
fn explain(status: u16, path: &str, errors: &[String]) -> String {
    let said = if errors.is_empty() {
        String::new()
    } else {
        format!(" (Vault says: {})", errors.join("; "))
    };
    match status {
        400 => format!("invalid request{said}"),
        403 => format!(
            "permission denied on {path}: the token is missing, expired or revoked, or its \
             policies do not allow this{said}"
        ),
        404 => format!("nothing at {path}, or no permission to see it{said}"),
        405 => format!("method not allowed on {path}{said}"),
        429 => {
            format!("this node is an unsealed standby; send the request to the active node{said}")
        }
        472 | 473 => format!(
            "this node is a replication secondary or performance standby; use the active \
             node{said}"
        ),
        501 => format!("Vault is not initialised: run `vault-transit init`{said}"),
        503 => {
            if errors.iter().any(|e| e.contains("sealed")) {
                format!("Vault is sealed: run `vault-transit unseal`{said}")
            } else {
                format!("Vault is unavailable (sealed or in maintenance){said}")
            }
        }
        _ => format!("HTTP {status}{said}"),
    }
}
