//! One signed Query API call: form-encoded parameters in, XML out, with
//! retries for what AWS says is worth retrying.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use ha_plan::error_chain;

/// The Query API version every call names.
pub const API_VERSION: &str = "2016-11-15";

/// How many times a call is tried when AWS answers with throttling or a
/// server error, or the connection fails.
const ATTEMPTS: u32 = 4;

/// The longest reply body read (a `DescribeSnapshots` page of 1,000
/// snapshots is about 1 MiB).
const MAX_REPLY: usize = 32 << 20;

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Why an EC2 call failed. Messages name the action, never a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// EC2 refused the call.
    #[error("EC2 {action}: {code}: {message}{}", request_id.as_deref().map(|id| format!(" (request {id})")).unwrap_or_default())]
    Api {
        /// The action, e.g. `CreateSnapshot`.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// EC2's error code, e.g. `InvalidSnapshot.NotFound`.
        code: String,
        /// EC2's message.
        message: String,
        /// The request id, for AWS support.
        request_id: Option<String>,
    },
    /// The endpoint could not be reached, or the reply not read.
    #[error("EC2 {action}: {detail}")]
    Http {
        /// The action.
        action: &'static str,
        /// What failed.
        detail: String,
    },
    /// No credentials could be found (the SDK's chain: environment,
    /// profile, instance role, …).
    #[error("AWS credentials for EC2: {detail}")]
    Credentials {
        /// Why.
        detail: String,
    },
    /// The reply is not what the action returns.
    #[error("EC2 {action}: an unreadable reply: {detail}")]
    Reply {
        /// The action.
        action: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The client cannot be built: no region, no credentials provider, an
    /// endpoint that is no URL, no trusted roots.
    #[error("EC2 client: {detail}")]
    Config {
        /// Why.
        detail: String,
    },
}

impl Error {
    /// What went wrong, without the action: `code: message (request id)`
    /// for EC2's refusal, else the cause (for a caller that names the
    /// action itself).
    pub fn reason(&self) -> String {
        match self {
            Error::Api {
                code,
                message,
                request_id,
                ..
            } => {
                let mut text = code.clone();
                if !message.is_empty() {
                    text.push_str(": ");
                    text.push_str(message);
                }
                if let Some(id) = request_id {
                    text.push_str(&format!(" (request {id})"));
                }
                text
            }
            Error::Http { detail, .. }
            | Error::Credentials { detail }
            | Error::Config { detail } => detail.clone(),
            Error::Reply { detail, .. } => format!("an unreadable reply: {detail}"),
        }
    }

    /// EC2's error code, for an [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying again may succeed: throttling, a server error, a
    /// connection that failed.
    fn is_transient(&self) -> bool {
        match self {
            Error::Http { .. } => true,
            Error::Api { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "RequestLimitExceeded"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestThrottled"
                            | "InternalError"
                            | "Unavailable"
                            | "ServiceUnavailable"
                    )
            }
            _ => false,
        }
    }
}

/// An EC2 client for one region: who signs (the credentials provider),
/// where requests go (the regional endpoint, or an override such as a VPC
/// endpoint or an emulator), and the HTTP client (rustls, the system's
/// roots).
#[derive(Clone)]
pub struct Ec2 {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    credentials: SharedCredentialsProvider,
}

impl fmt::Debug for Ec2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ec2")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The parameters of one call, in order (`Name`, `Filter.1.Value.1`, …).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn add(mut self, name: impl Into<String>, value: impl Into<String>) -> Params {
        self.0.push((name.into(), value.into()));
        self
    }

    /// `TagSpecification.1` for a resource of `resource_type` with `tags`
    /// (nothing without tags).
    pub(crate) fn tag_specification(
        mut self,
        resource_type: &str,
        tags: &[(String, String)],
    ) -> Params {
        if tags.is_empty() {
            return self;
        }
        self = self.add("TagSpecification.1.ResourceType", resource_type);
        for (i, (key, value)) in tags.iter().enumerate() {
            let n = i + 1;
            self = self
                .add(format!("TagSpecification.1.Tag.{n}.Key"), key)
                .add(format!("TagSpecification.1.Tag.{n}.Value"), value);
        }
        self
    }

    /// The parameters, in order.
    #[cfg(test)]
    pub(crate) fn pairs(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }

    /// `Prefix.1`, `Prefix.2`, … for `values`.
    pub(crate) fn list(mut self, prefix: &str, values: &[String]) -> Params {
        for (i, value) in values.iter().enumerate() {
            self = self.add(format!("{prefix}.{}", i + 1), value);
        }
        self
    }
}

impl Ec2 {
    /// A client as the AWS SDK's configuration says: its region, its
    /// credentials provider (the standard chain when it came from
    /// `aws_config::load_from_env`) and its endpoint override, if any.
    pub fn from_sdk_config(config: &aws_types::SdkConfig) -> Result<Ec2, Error> {
        let region = config.region().ok_or_else(|| Error::Config {
            detail: "no AWS region (set one in the configuration, AWS_REGION or the profile)"
                .to_owned(),
        })?;
        let credentials = config.credentials_provider().ok_or_else(|| Error::Config {
            detail: "no AWS credentials provider in the SDK configuration".to_owned(),
        })?;
        Ec2::new(region.as_ref(), config.endpoint_url(), credentials)
    }

    /// A client for `region`, sending to `endpoint_url` when given (a VPC
    /// endpoint, an emulator; `http://` is allowed for a local emulator)
    /// and to `https://ec2.REGION.amazonaws.com` (`.amazonaws.com.cn` in
    /// China) otherwise, signing with what `credentials` provides.
    pub fn new(
        region: &str,
        endpoint_url: Option<&str>,
        credentials: SharedCredentialsProvider,
    ) -> Result<Ec2, Error> {
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Error::Config {
                detail: format!("{region:?} is not an AWS region such as us-east-1"),
            });
        }
        let endpoint = match endpoint_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if region.starts_with("cn-") => format!("https://ec2.{region}.amazonaws.com.cn"),
            None => format!("https://ec2.{region}.amazonaws.com"),
        };
        let parsed = reqwest::Url::parse(&endpoint).map_err(|e| Error::Config {
            detail: format!("endpoint {endpoint:?}: {e}"),
        })?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(15));
        match parsed.scheme() {
            "https" => {
                let tls = ha_tls::system_client_config().map_err(|e| Error::Config {
                    detail: e.to_string(),
                })?;
                builder = builder.use_preconfigured_tls(tls);
            }
            "http" => {}
            other => {
                return Err(Error::Config {
                    detail: format!("endpoint {endpoint:?}: {other}:// is neither https nor http"),
                });
            }
        }
        let http = builder.build().map_err(|e| Error::Config {
            detail: e.to_string(),
        })?;
        Ok(Ec2 {
            http,
            endpoint,
            region: region.to_owned(),
            credentials,
        })
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls `action` with `params`: the reply's XML, once EC2 accepted
    /// the call (throttling, server errors and failed connections are
    /// tried again, up to four times in all, backing off).
    pub(crate) async fn call(&self, action: &'static str, params: Params) -> Result<String, Error> {
        let body = {
            let mut body = form_urlencoded::Serializer::new(String::new());
            body.append_pair("Action", action)
                .append_pair("Version", API_VERSION);
            for (name, value) in &params.0 {
                body.append_pair(name, value);
            }
            body.finish()
        };
        let mut attempt = 1;
        loop {
            match self.send(action, &body).await {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn send(&self, action: &'static str, body: &str) -> Result<String, Error> {
        let credentials =
            self.credentials
                .provide_credentials()
                .await
                .map_err(|e| Error::Credentials {
                    detail: error_chain(&e),
                })?;
        let identity = credentials.into();
        let signing = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Error::Config {
                detail: e.to_string(),
            })?
            .into();
        let url = format!("{}/", self.endpoint);
        let signable = SignableRequest::new(
            "POST",
            &url,
            [("content-type", CONTENT_TYPE)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| Error::Config {
            detail: e.to_string(),
        })?;
        let (instructions, _) = sign(signable, &signing)
            .map_err(|e| Error::Config {
                detail: e.to_string(),
            })?
            .into_parts();
        let mut request = self
            .http
            .post(&url)
            .header("content-type", CONTENT_TYPE)
            .body(body.to_owned());
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let http = |e: reqwest::Error| Error::Http {
            action,
            detail: error_chain(&e),
        };
        let mut response = request.send().await.map_err(http)?;
        let status = response.status();
        let mut reply = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if reply.len() + chunk.len() > MAX_REPLY {
                return Err(Error::Reply {
                    action,
                    detail: format!("longer than {} MiB", MAX_REPLY >> 20),
                });
            }
            reply.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(reply).map_err(|_| Error::Reply {
            action,
            detail: "not UTF-8".to_owned(),
        })?;
        if status.is_success() {
            return Ok(text);
        }
        Err(api_error(action, status.as_u16(), &text))
    }
}

/// The error EC2 sent (`<Response><Errors><Error><Code>…`), or the status
/// and the start of the body when it is no such document.
pub(crate) fn api_error(action: &'static str, status: u16, body: &str) -> Error {
    let parsed = roxmltree::Document::parse(body).ok();
    let find = |name: &str| {
        parsed.as_ref().and_then(|doc| {
            doc.descendants()
                .find(|n| n.tag_name().name() == name)
                .and_then(|n| n.text())
                .map(str::to_owned)
        })
    };
    let code = find("Code");
    Error::Api {
        action,
        status,
        message: find("Message").unwrap_or_else(|| {
            let start: String = body.chars().take(200).collect();
            if code.is_some() { String::new() } else { start }
        }),
        code: code.unwrap_or_else(|| format!("HTTP {status}")),
        request_id: find("RequestID").or_else(|| find("RequestId")),
    }
}

/// A parsed reply, and what reading it needs.
pub(crate) struct Reply<'a> {
    pub(crate) action: &'static str,
    pub(crate) doc: roxmltree::Document<'a>,
}

impl<'a> Reply<'a> {
    pub(crate) fn parse(action: &'static str, text: &'a str) -> Result<Reply<'a>, Error> {
        let doc = roxmltree::Document::parse(text).map_err(|e| Error::Reply {
            action,
            detail: e.to_string(),
        })?;
        Ok(Reply { action, doc })
    }

    /// The root element.
    pub(crate) fn root(&self) -> roxmltree::Node<'_, 'a> {
        self.doc.root_element()
    }

    /// An error naming what the reply lacks.
    pub(crate) fn missing(&self, what: &str) -> Error {
        Error::Reply {
            action: self.action,
            detail: format!("no {what}"),
        }
    }
}

/// The first child element of `node` named `name` (any namespace).
pub(crate) fn child<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// The text of `node`'s child `name`.
pub(crate) fn text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(|n| n.text().unwrap_or_default().to_owned())
}

/// The `item`s of `node`'s child list `name` (`<snapshotSet><item>…`).
pub(crate) fn items<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    child(node, name)
        .into_iter()
        .flat_map(|list| list.children())
        .filter(|n| n.is_element() && n.tag_name().name() == "item")
}

/// The `tagSet` of `node` as `(key, value)` pairs.
pub(crate) fn tags(node: roxmltree::Node<'_, '_>) -> Vec<(String, String)> {
    items(node, "tagSet")
        .filter_map(|item| Some((text(item, "key")?, text(item, "value").unwrap_or_default())))
        .collect()
}

/// The non-empty text of the reply's top-level element `name`.
pub(crate) fn text_of(reply: &Reply<'_>, name: &str) -> Option<String> {
    child(reply.root(), name)
        .and_then(|n| n.text())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}
