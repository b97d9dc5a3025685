//! duet's simulator: a discrete-event LLM-serving engine with paged KV, pure scheduling policies, an
//! attention-aware roofline cost model with SM-scaling curves, and vLLM-compatible metrics.
//!
//! Data flow: a [`duet_traces::Workload`] and a [`run::SimConfig`] go into [`run::simulate`]; the
//! [`engine`] asks a [`policy::Policy`] for plans, validates them, hands batches to an
//! [`executor::Executor`] (here the [`executor::SimExecutor`] over [`cost::CostModel`]), and records per-request
//! timings; [`metrics`] turns them into the numbers [`report`] writes.

pub mod cluster;
pub mod compare;
pub mod cost;
pub mod engine;
pub mod error;
pub mod executor;
pub mod gpu;
mod kernel;
pub mod kv;
pub mod metrics;
pub mod model;
pub mod outdir;
pub mod partition;
pub mod policy;
pub mod prefix;
pub mod preset;
pub mod queue;
pub mod realtime;
pub mod report;
pub mod request;
pub mod run;
pub mod stats;
pub mod time;
pub mod trace_event;
pub mod validate;

pub use error::{ConfigError, SimError};
pub use gpu::GpuSpec;
pub use model::ModelSpec;
pub use run::{SimConfig, SimRun, simulate};
pub use time::Nanos;
