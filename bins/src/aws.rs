//! The AWS SDK configuration every binary uses: the standard credential and
//! region chain, rustls with ring for HTTPS, and an optional endpoint
//! override (for `moto_server` or a VPC endpoint).

/// Builds the SDK configuration for `region`. With `endpoint_url`, every
/// service is sent there (S3 clients must then use path-style addressing,
/// see [`s3_client`]).
pub async fn sdk_config(region: &str, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .http_client(http_client);
    if let Some(endpoint) = endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// An S3 client; path-style when an endpoint override is in use.
pub fn s3_client(config: &aws_config::SdkConfig, endpoint_override: bool) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(endpoint_override)
            .build(),
    )
}
