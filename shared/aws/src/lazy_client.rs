//! AWS SDK clients built on their first call.
//!
//! The first client built for a service parses that service's endpoint
//! partitions (its SDK crate's own copy: JSON and a dozen regexes), about
//! half a million instructions. The step and API functions reach Secrets
//! Manager, SES and SNS only for some actions and routes, so building those
//! three clients at start-up was 1.7 million of the 4.2 million instructions
//! the step function ran before its first poll (of 6.1 for the API), paid by every cold start whether or not it sent
//! an email. A lazy client pays it on the first call that needs it, once.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// A client of type `C`, built when first dereferenced and shared by every
/// clone from then on.
pub struct LazyClient<C> {
    shared: Arc<Shared<C>>,
}

struct Shared<C> {
    client: OnceLock<C>,
    build: Box<dyn Fn() -> C + Send + Sync>,
}

impl<C: 'static> LazyClient<C> {
    /// A client `build` makes from `config` on its first call.
    pub fn from_config(config: &aws_config::SdkConfig, build: fn(&aws_config::SdkConfig) -> C) -> Self {
        let config = config.clone();
        Self::with(move || build(&config))
    }

    fn with(build: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self {
            shared: Arc::new(Shared {
                client: OnceLock::new(),
                build: Box::new(build),
            }),
        }
    }
}

impl<C> LazyClient<C> {
    /// Whether the client has been built yet.
    pub fn is_built(&self) -> bool {
        self.shared.client.get().is_some()
    }
}

/// A client to use as it is (tests that hand an adapter their own client):
/// the first call takes a clone of it, which shares its connections.
impl<C: Clone + Send + Sync + 'static> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        Self::with(move || client.clone())
    }
}

impl<C> Deref for LazyClient<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.shared.client.get_or_init(|| (self.shared.build)())
    }
}

impl<C> Clone for LazyClient<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<C> fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyClient").field("built", &self.is_built()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_client_is_built_on_first_use_and_once_for_every_clone() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let lazy = LazyClient::with(move || counted.fetch_add(1, Ordering::SeqCst) + 100);
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(
            builds.load(Ordering::SeqCst),
            0,
            "nothing is built before the first call"
        );
        assert_eq!(*clone, 100);
        assert_eq!(*lazy, 100);
        assert!(lazy.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn building_an_sdk_client_waits_for_its_first_call() {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let lazy = LazyClient::from_config(&config, aws_sdk_sns::Client::new);
        assert!(!lazy.is_built());
        assert_eq!(lazy.config().region().map(|r| r.as_ref()), Some("us-east-1"));
        assert!(lazy.is_built());
    }
}
