//! A function's AWS SDK configuration, from the environment Lambda gives it.
//!
//! Not `aws_config`'s loader. On Lambda the region and the role's
//! credentials are always in the environment, and the loader's fallback
//! chains (profiles, SSO, web identity through STS, IMDS, container
//! credentials) were linked into every function for code that never runs
//! there: about 0.22 MB of each function's zip (README, Performance).
//! A variable the loader would have read and this does not is refused at
//! init, by name, rather than ignored.

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::region::Region;
use aws_types::sdk_config::{RetryConfig, SdkConfig, TimeoutConfig};

use crate::ConfigError;

const REGION: &str = "AWS_REGION";
const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// Read with the credentials, as the loader does: DynamoDB then sends to
/// the account's own endpoint.
const ACCOUNT_ID: &str = "AWS_ACCOUNT_ID";
/// Every service's endpoint: an emulator's, in tests and benches.
const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// Every variable `aws_config`'s loader reads and this does not, but those
/// that only take effect through one listed here (a container credentials
/// token, a role's session name, the instance metadata endpoint). A value
/// that would change nothing (`AWS_RETRY_MODE=standard`) is refused too:
/// the function cannot tell that it was meant as a no-op.
const NOT_READ: &[&str] = &[
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_SESV2",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE",
    "AWS_NEW_RETRIES_2026",
    "AWS_DISABLE_CLOCK_SKEW_CORRECTION",
    "AWS_AUTH_SCHEME_PREFERENCE",
    "AWS_SIGV4A_SIGNING_REGION_SET",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
    "AWS_DISABLE_REQUEST_COMPRESSION",
    "AWS_REQUEST_MIN_COMPRESSION_SIZE_BYTES",
    "AWS_SDK_UA_APP_ID",
];

/// What the loader's defaults come to without a profile: a 3.1 s connect
/// timeout and standard retries (3 attempts).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The configuration from this process's environment: the region
/// (`AWS_REGION`, else `AWS_DEFAULT_REGION`), the credentials Lambda sets
/// (and `AWS_ACCOUNT_ID`), and `AWS_ENDPOINT_URL` when set.
pub fn sdk_config() -> Result<SdkConfig, ConfigError> {
    sdk_config_from(&|name| std::env::var(name).ok())
}

/// As [`sdk_config`], from `env`; a blank value counts as unset, as the
/// loader reads it.
fn sdk_config_from(env: &dyn Fn(&str) -> Option<String>) -> Result<SdkConfig, ConfigError> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    if let Some(name) = NOT_READ.iter().find(|name| set(name).is_some()) {
        return Err(ConfigError {
            name,
            problem: "set, but the functions do not read it: they read AWS_REGION, the credentials Lambda sets and AWS_ENDPOINT_URL",
        });
    }
    let required = |name: &'static str| {
        set(name).ok_or(ConfigError {
            name,
            problem: "not set (Lambda sets it)",
        })
    };
    let region = set(REGION).map_or_else(|| required(DEFAULT_REGION), Ok)?;
    let mut credentials = Credentials::builder()
        .access_key_id(required(ACCESS_KEY_ID)?)
        .secret_access_key(required(SECRET_ACCESS_KEY)?)
        .provider_name("Environment");
    credentials.set_session_token(set(SESSION_TOKEN));
    credentials.set_account_id(set(ACCOUNT_ID).map(Into::into));
    let credentials = credentials.build();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(hookflow_aws::sdk_http_client())
        .timeout_config(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).build())
        .retry_config(RetryConfig::standard());
    if let Some(url) = set(ENDPOINT_URL) {
        config = config.endpoint_url(url);
    }
    Ok(config.build())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_credential_types::provider::ProvideCredentials;

    use super::*;

    /// What Lambda sets in a function's environment (its reserved
    /// variables), and what the template adds.
    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-central-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
        ("AWS_ACCESS_KEY", "ASIAEXAMPLE"),
        ("_HANDLER", "bootstrap"),
        ("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("AWS_LAMBDA_FUNCTION_NAME", "hookflow-step"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/hookflow-step"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/03/[$LATEST]abc"),
        ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
        ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("TZ", ":UTC"),
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
        ("RUST_LOG", "info"),
    ];

    fn config(vars: &[(&str, &str)]) -> Result<SdkConfig, ConfigError> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        sdk_config_from(&|name| env.get(name).cloned())
    }

    async fn credentials_of(config: &SdkConfig) -> Credentials {
        config
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("static credentials")
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        LAMBDA.iter().chain(extra).copied().collect()
    }

    #[tokio::test]
    async fn lambdas_environment_gives_the_region_and_the_roles_credentials() {
        let config = config(LAMBDA).expect("Lambda's environment is enough");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), None);
        let credentials = credentials_of(&config).await;
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(credentials.account_id(), None);
        // The loader's defaults.
        assert_eq!(
            config.timeout_config().and_then(|t| t.connect_timeout()),
            Some(Duration::from_millis(3100))
        );
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(3));
        assert!(config.behavior_version().is_some());
        assert!(config.http_client().is_some());
    }

    #[tokio::test]
    async fn the_endpoint_url_the_default_region_and_the_account_are_read() {
        let vars = [
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_REGION", " "),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_ACCOUNT_ID", "123456789012"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ];
        let config = config(&vars).expect("config");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        let credentials = credentials_of(&config).await;
        assert_eq!(credentials.account_id().map(|id| id.as_str()), Some("123456789012"));
        assert_eq!(credentials.session_token(), None);
    }

    #[test]
    fn missing_credentials_or_region_are_named() {
        let without =
            |name: &str| -> Vec<(&str, &str)> { LAMBDA.iter().filter(|(k, _)| *k != name).copied().collect() };
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let error = config(&without(name)).expect_err(name);
            assert_eq!(error.name, name);
        }
        let no_region: Vec<_> = LAMBDA.iter().filter(|(k, _)| !k.ends_with("REGION")).copied().collect();
        assert_eq!(config(&no_region).expect_err("no region").name, "AWS_DEFAULT_REGION");
    }

    #[test]
    fn what_the_loader_would_read_and_this_does_not_is_refused_by_name() {
        for name in NOT_READ {
            let error = config(&with(&[(*name, "x")])).expect_err(name);
            assert_eq!(error.name, *name);
            assert!(error.to_string().contains("do not read it"), "{error}");
        }
        // Blank is unset, as the loader reads it.
        assert!(config(&with(&[("AWS_PROFILE", "")])).is_ok());
    }

    /// The configuration signs and sends: a DynamoDB call through it
    /// reaches the emulator `make test` starts.
    #[tokio::test]
    async fn a_client_built_from_it_reaches_the_endpoint() {
        let endpoint = std::env::var("HOOKFLOW_TEST_AWS_ENDPOINT")
            .expect("HOOKFLOW_TEST_AWS_ENDPOINT is not set: run the tests with `make test`, which starts moto");
        let vars = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ];
        let dynamo = aws_sdk_dynamodb::Client::new(&config(&vars).expect("config"));
        dynamo
            .list_tables()
            .send()
            .await
            .expect("ListTables through the configuration");
    }
}
