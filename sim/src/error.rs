//! Errors of the simulator: bad configuration (user input), executor failures and engine failures (policy bugs,
//! stalls). This module imports nothing from the crate, so every other module can use it.

/// A configuration the simulator cannot run: the message says what and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unknown or malformed model.
    #[error("{0}")]
    Model(String),
    /// Unknown GPU.
    #[error("{0}")]
    Gpu(String),
    /// Not enough GPU memory for weights plus some KV cache, or a request that can never fit.
    #[error("{0}")]
    Memory(String),
    /// Impossible SLO, budget or other setting.
    #[error("{0}")]
    Invalid(String),
}

/// A run that could not complete.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A policy returned a plan the engine refuses (a bug in the policy).
    #[error("policy {policy} returned an invalid plan at t={at_ns} ns: {reason}")]
    InvalidPlan {
        /// Policy name.
        policy: String,
        /// Simulated time of the plan.
        at_ns: u64,
        /// Which rule it broke.
        reason: String,
    },
    /// The executor failed.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// Work remains but the policy schedules nothing and no event is pending.
    #[error(
        "simulation stalled at t={at_ns} ns: {waiting} waiting and {running} running requests, but policy {policy} planned nothing"
    )]
    Stalled {
        /// Policy name.
        policy: String,
        /// Simulated time of the stall.
        at_ns: u64,
        /// Requests in the queue.
        waiting: usize,
        /// Requests admitted.
        running: usize,
    },
    /// Results could not be written as the run went (`engine::run_streaming`).
    #[error("{0}")]
    Output(String),
    /// A percentile limit the run was given (`EngineConfig::stop`) is certain to fail: the run stopped early.
    #[error("stopped early: {what}")]
    LimitExceeded {
        /// Which limit, and the count that decided it.
        what: String,
    },
}

/// An executor failure (the GPU executor's errors; the simulated executor never fails).
#[derive(Debug, thiserror::Error)]
#[error("executor failed: {0}")]
pub struct ExecutorError(pub String);
