//! The one place where use cases are built from ports. The Lambda functions,
//! `hookflow dev`, the CLI and the tests all call these constructors, so a
//! use case runs the same way wherever it runs: what differs between them is
//! only which adapters fill [`Stores`] (or the part of it a function uses:
//! [`DoorStores`], [`DispatchStores`] or [`StepStores`]) and which queues
//! they pass.

use std::sync::Arc;

use crate::access::{Access, AuditLog, KeyStore};
use crate::actions::ActionPorts;
use crate::connections::{ConnectionResolver, ConnectionStore, Connections, SecretVault};
use crate::contacts::ContactStore;
use crate::dead_letter::QueueKind;
use crate::engine::{DeadLetters, DeliveryLimits, Reaper, Recovery};
use crate::hooks::{HookReceiver, HookStore, Hooks};
use crate::lifecycle::{WorkflowCatalog, Workflows};
use crate::memory::MemoryBackend;
use crate::messaging::Messaging;
use crate::metrics::Metrics;
use crate::outbound::{FanOut, OutboundStore, WebhookDeliverer, WebhookEndpoints};
use crate::ports::{Clock, DeadLetterStore, EventDedupe, HttpClient, Queue, RunLog, SubscriptionIndex, WorkflowStore};
use crate::{Dispatcher, Ingest, StepExecutor};

/// The stores of one stack (DynamoDB tables, or the in-memory twins) and its
/// clock. Queues are passed to each use case: a Lambda function knows only
/// the queues it sends to.
#[derive(Clone)]
pub struct Stores {
    pub workflows: Arc<dyn WorkflowStore>,
    /// The same store as `workflows`, with the lifecycle's heads and commits.
    pub catalog: Arc<dyn WorkflowCatalog>,
    pub subscriptions: Arc<dyn SubscriptionIndex>,
    pub runs: Arc<dyn RunLog>,
    pub dedupe: Arc<dyn EventDedupe>,
    pub keys: Arc<dyn KeyStore>,
    pub audit: Arc<dyn AuditLog>,
    pub hooks: Arc<dyn HookStore>,
    pub contacts: Arc<dyn ContactStore>,
    /// Sites' SSO settings.
    pub sites: Arc<dyn crate::sso::SiteStore>,
    /// Connections' metadata, and the vault their credentials are in.
    pub connections: Arc<dyn ConnectionStore>,
    pub vault: Arc<dyn SecretVault>,
    /// Webhook endpoints, their messages and attempt logs.
    pub outbound: Arc<dyn OutboundStore>,
    /// Where email and SMS steps send (SES and SNS, or a twin).
    pub messaging: Messaging,
    /// Parked dead letters (in the runs table on AWS).
    pub dead_letters: Arc<dyn DeadLetterStore>,
    pub clock: Arc<dyn Clock>,
    /// Where the engine's counters go: EMF in Lambda, Prometheus in `hookflow dev`.
    pub metrics: Arc<dyn Metrics>,
}

impl Stores {
    /// The in-memory twins of `backend`.
    pub fn memory(backend: &MemoryBackend, clock: Arc<dyn Clock>) -> Self {
        Self {
            workflows: backend.workflows.clone(),
            catalog: backend.workflows.clone(),
            subscriptions: backend.subscriptions.clone(),
            runs: backend.runs.clone(),
            dedupe: backend.dedupe.clone(),
            keys: backend.keys.clone(),
            audit: backend.audit.clone(),
            hooks: backend.hooks.clone(),
            contacts: backend.contacts.clone(),
            sites: backend.sites.clone(),
            connections: backend.connections.clone(),
            vault: backend.vault.clone(),
            outbound: backend.outbound.clone(),
            messaging: backend.outbox.messaging(),
            dead_letters: backend.dead_letters.clone(),
            clock,
            metrics: backend.metrics.clone(),
        }
    }

    /// The stores of the public doors (the webhook function).
    pub fn doors(&self) -> DoorStores {
        DoorStores {
            dedupe: self.dedupe.clone(),
            keys: self.keys.clone(),
            audit: self.audit.clone(),
            hooks: self.hooks.clone(),
            sites: self.sites.clone(),
            contacts: self.contacts.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The stores every run's use cases share.
    fn run_stores(&self) -> RunStores {
        RunStores {
            workflows: self.workflows.clone(),
            runs: self.runs.clone(),
            outbound: self.outbound.clone(),
            dead_letters: self.dead_letters.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// The stores of dispatch (the dispatcher function).
    pub fn dispatch(&self) -> DispatchStores {
        DispatchStores {
            subscriptions: self.subscriptions.clone(),
            run: self.run_stores(),
        }
    }

    /// The stores of the steps (the step function).
    pub fn steps(&self) -> StepStores {
        StepStores {
            run: self.run_stores(),
            dedupe: self.dedupe.clone(),
            contacts: self.contacts.clone(),
            connections: self.connections.clone(),
            vault: self.vault.clone(),
            messaging: self.messaging.clone(),
        }
    }

    /// Accepts events (webhooks, EventBridge, `POST /v1/events`) onto the
    /// triggers queue, once per event id.
    pub fn ingest(&self, triggers: Arc<dyn Queue>) -> Ingest {
        ingest(self.dedupe.clone(), triggers)
    }

    /// Starts one run per matching workflow on the steps queue, and live test
    /// runs of one version.
    pub fn dispatcher(&self, steps: Arc<dyn Queue>) -> Dispatcher {
        self.dispatch().dispatcher(steps)
    }

    /// As [`StepStores::webhook_deliverer`].
    pub fn webhook_deliverer(
        &self,
        steps: Arc<dyn Queue>,
        triggers: Arc<dyn Queue>,
        http: Arc<dyn HttpClient>,
    ) -> WebhookDeliverer {
        self.steps().webhook_deliverer(steps, triggers, http)
    }

    /// Webhook endpoints and their operator controls; resends go onto `steps`.
    pub fn webhook_endpoints(&self, steps: Arc<dyn Queue>) -> WebhookEndpoints {
        WebhookEndpoints::new(self.outbound.clone(), steps, self.clock.clone())
    }

    /// As [`StepStores::step_executor`].
    pub fn step_executor(
        &self,
        steps: Arc<dyn Queue>,
        triggers: Arc<dyn Queue>,
        http: Arc<dyn HttpClient>,
        limits: DeliveryLimits,
    ) -> StepExecutor {
        self.steps().step_executor(steps, triggers, http, limits)
    }

    /// As [`StepStores::steps_consumer`].
    pub fn steps_consumer(
        &self,
        steps: Arc<dyn Queue>,
        triggers: Arc<dyn Queue>,
        http: Arc<dyn HttpClient>,
        limits: DeliveryLimits,
    ) -> crate::worker::StepsWork {
        self.steps().steps_consumer(steps, triggers, http, limits)
    }

    /// The workflow lifecycle (drafts, versions, subscriptions); publishing
    /// a `Hook.<name>` trigger needs a hook of the workspace that emits it.
    pub fn workflows(&self) -> Workflows {
        Workflows::new(self.catalog.clone(), self.hooks(), self.clock.clone())
    }

    /// Hooks and their secrets (the management API).
    pub fn hooks(&self) -> Hooks {
        Hooks::new(self.hooks.clone(), self.clock.clone())
    }

    /// The public hook route: authenticated requests become events on `triggers`.
    pub fn hook_receiver(&self, triggers: Arc<dyn Queue>) -> HookReceiver {
        self.doors().hook_receiver(triggers)
    }

    /// The on-call actions: replays onto `steps`, bulk replays, cancels.
    pub fn recovery(&self, steps: Arc<dyn Queue>) -> Recovery {
        Recovery::new(self.runs.clone(), steps, self.clock.clone(), self.metrics.clone())
    }

    /// As [`RunStores::dead_letters`].
    pub fn dead_letters(&self, queue: QueueKind, steps: Arc<dyn Queue>) -> DeadLetters {
        self.run_stores().dead_letters(queue, steps)
    }

    /// As [`RunStores::reaper`].
    pub fn reaper(&self, limits: DeliveryLimits, steps: Arc<dyn Queue>) -> Reaper {
        self.run_stores().reaper(limits, steps)
    }

    /// The contacts API: list, read, change, erase, export.
    pub fn contacts(&self) -> crate::contacts::Contacts {
        crate::contacts::Contacts::new(self.contacts.clone(), self.runs.clone(), self.clock.clone())
    }

    /// Sites' SSO settings (the management API).
    pub fn sso_sites(&self) -> crate::sso::SsoSites {
        crate::sso::SsoSites::new(self.sites.clone(), self.clock.clone())
    }

    /// The public identify route: a site's JWT upserts its contact, whose
    /// events go through ingest onto `triggers`.
    pub fn identify(&self, triggers: Arc<dyn Queue>) -> crate::sso::Identify {
        self.doors().identify(triggers)
    }

    /// Connected apps' credentials (the management API).
    pub fn connections(&self) -> Connections {
        Connections::new(self.connections.clone(), self.vault.clone(), self.clock.clone())
    }

    /// API keys and the audit trail.
    pub fn access(&self) -> Access {
        self.doors().access()
    }
}

/// Accepts events onto `triggers`, once per event id: all the events
/// function needs, so that it links no other store.
pub fn ingest(dedupe: Arc<dyn EventDedupe>, triggers: Arc<dyn Queue>) -> Ingest {
    Ingest::new(dedupe, triggers)
}

/// The part of [`Stores`] the public doors use: the webhook function's
/// routes (events, hooks, identify) and the key check in front of them. A
/// function built from these alone links no other store: each store in
/// `Stores` is a trait object, and a trait object's every method is linked
/// with it.
#[derive(Clone)]
pub struct DoorStores {
    pub dedupe: Arc<dyn EventDedupe>,
    pub keys: Arc<dyn KeyStore>,
    pub audit: Arc<dyn AuditLog>,
    pub hooks: Arc<dyn HookStore>,
    pub sites: Arc<dyn crate::sso::SiteStore>,
    pub contacts: Arc<dyn ContactStore>,
    pub clock: Arc<dyn Clock>,
}

impl DoorStores {
    /// As [`Stores::ingest`].
    pub fn ingest(&self, triggers: Arc<dyn Queue>) -> Ingest {
        ingest(self.dedupe.clone(), triggers)
    }

    /// As [`Stores::hook_receiver`].
    pub fn hook_receiver(&self, triggers: Arc<dyn Queue>) -> HookReceiver {
        HookReceiver::new(self.hooks.clone(), self.ingest(triggers), self.clock.clone())
    }

    /// As [`Stores::identify`].
    pub fn identify(&self, triggers: Arc<dyn Queue>) -> crate::sso::Identify {
        crate::sso::Identify::new(
            self.sites.clone(),
            self.contacts.clone(),
            Arc::new(self.ingest(triggers)),
            self.clock.clone(),
        )
    }

    /// As [`Stores::access`].
    pub fn access(&self) -> Access {
        Access::new(self.keys.clone(), self.audit.clone(), self.clock.clone())
    }
}

/// The stores the use cases of a run share, wherever it is started or
/// ended: the dispatcher, the steps, the reaper and the parking of dead
/// letters.
#[derive(Clone)]
pub struct RunStores {
    pub workflows: Arc<dyn WorkflowStore>,
    pub runs: Arc<dyn RunLog>,
    pub outbound: Arc<dyn OutboundStore>,
    pub dead_letters: Arc<dyn DeadLetterStore>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
}

impl RunStores {
    /// Webhook messages and their first orders onto `steps`.
    fn fan_out(&self, steps: Arc<dyn Queue>) -> FanOut {
        FanOut::new(self.outbound.clone(), steps, self.clock.clone())
    }

    /// Parks `queue`'s dead letters (the consumer of its dead-letter queue,
    /// and every consumer of it on a terminal error), lists and redrives
    /// them; a parked step message's run ends failed, announced to webhook
    /// endpoints through orders on `steps`.
    pub fn dead_letters(&self, queue: QueueKind, steps: Arc<dyn Queue>) -> DeadLetters {
        DeadLetters::new(
            queue,
            self.dead_letters.clone(),
            self.runs.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            self.fan_out(steps),
        )
    }

    /// Ends runs stuck past the redelivery horizon of the steps queue these
    /// `limits` describe.
    pub fn reaper(&self, limits: DeliveryLimits, steps: Arc<dyn Queue>) -> Reaper {
        Reaper::new(
            self.runs.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            limits.redelivery_horizon,
            self.fan_out(steps),
        )
    }
}

/// The part of [`Stores`] dispatch uses: the dispatcher and the parking of
/// its dead letters (see [`DoorStores`] for why it is a type of its own).
#[derive(Clone)]
pub struct DispatchStores {
    pub subscriptions: Arc<dyn SubscriptionIndex>,
    pub run: RunStores,
}

impl DispatchStores {
    /// Starts one run per matching workflow on the steps queue, and live
    /// test runs of one version.
    pub fn dispatcher(&self, steps: Arc<dyn Queue>) -> Dispatcher {
        let run = &self.run;
        Dispatcher::new(
            self.subscriptions.clone(),
            run.workflows.clone(),
            run.runs.clone(),
            steps.clone(),
            run.clock.clone(),
            run.metrics.clone(),
            run.fan_out(steps),
        )
    }
}

/// The part of [`Stores`] the steps use: the step executor, the webhook
/// deliverer, the reaper and the parking of their dead letters (see
/// [`DoorStores`] for why it is a type of its own).
#[derive(Clone)]
pub struct StepStores {
    pub run: RunStores,
    /// The events contact steps emit go through ingest.
    pub dedupe: Arc<dyn EventDedupe>,
    pub contacts: Arc<dyn ContactStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub vault: Arc<dyn SecretVault>,
    pub messaging: Messaging,
}

impl StepStores {
    /// Executes steps from `steps`, whose redelivery `limits` bound the
    /// claims; actions call out through `http`, change contacts, and emit
    /// their events through ingest onto `triggers`.
    pub fn step_executor(
        &self,
        steps: Arc<dyn Queue>,
        triggers: Arc<dyn Queue>,
        http: Arc<dyn HttpClient>,
        limits: DeliveryLimits,
    ) -> StepExecutor {
        let run = &self.run;
        let ports = ActionPorts {
            http,
            contacts: self.contacts.clone(),
            events: Arc::new(ingest(self.dedupe.clone(), triggers)),
            connections: Arc::new(ConnectionResolver::new(
                self.connections.clone(),
                self.vault.clone(),
                run.clock.clone(),
            )),
            messaging: self.messaging.clone(),
        };
        StepExecutor::new(
            run.workflows.clone(),
            run.runs.clone(),
            steps.clone(),
            ports,
            run.clock.clone(),
            run.metrics.clone(),
            limits,
            run.fan_out(steps),
        )
    }

    /// Makes webhook attempts from the orders on `steps` through `http`;
    /// the operational `WebhookEndpoint.Disabled` goes through ingest onto
    /// `triggers`.
    pub fn webhook_deliverer(
        &self,
        steps: Arc<dyn Queue>,
        triggers: Arc<dyn Queue>,
        http: Arc<dyn HttpClient>,
    ) -> WebhookDeliverer {
        let run = &self.run;
        WebhookDeliverer::new(
            run.outbound.clone(),
            steps,
            http,
            run.clock.clone(),
            run.metrics.clone(),
            Arc::new(ingest(self.dedupe.clone(), triggers)),
        )
    }

    /// The steps queue's consumer: the step executor and the webhook
    /// deliverer, both calling out through `http`.
    pub fn steps_consumer(
        &self,
        steps: Arc<dyn Queue>,
        triggers: Arc<dyn Queue>,
        http: Arc<dyn HttpClient>,
        limits: DeliveryLimits,
    ) -> crate::worker::StepsWork {
        crate::worker::StepsWork {
            executor: self.step_executor(steps.clone(), triggers.clone(), http.clone(), limits),
            deliverer: self.webhook_deliverer(steps, triggers, http),
        }
    }
}
