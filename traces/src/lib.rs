//! Arrival traces and workload generators for duet.
//!
//! Every source produces the same thing: a [`Workload`], a list of [`RequestSpec`]s sorted by arrival time,
//! with arrivals in integer nanoseconds counted from the first request and optional prefix-block hashes.
//! Length-only traces give a [`LengthTable`] that a generator turns into a workload. Nothing here simulates.
//!
//! - Loaders, one module per format, all streaming: [`azure`], [`mooncake`], [`burstgpt`], [`vidur`],
//!   [`canonical`]; [`load`] detects the format.
//! - Generators: [`arrivals`] (Poisson, Gamma, constant, burst), [`lengths`] (fixed, uniform, lognormal, Zipf,
//!   empirical), composed by [`generate`].
//! - [`transform`]: rate, window, first N, filters, caps, context fit, shuffle.
//! - [`stats`]: descriptive statistics.

pub mod arrivals;
pub mod azure;
pub mod burstgpt;
pub mod canonical;
pub mod error;
pub mod generate;
pub mod lengths;
pub mod load;
pub mod mooncake;
pub mod spec;
pub mod stats;
mod text;
pub mod transform;
pub mod vidur;

pub use error::TraceError;
pub use load::{BUNDLED_DEFAULT_NAME, LoadOptions, TraceData, bundled_default, load_path};
pub use spec::{LengthTable, MAX_ARRIVAL_NS, PrefixHashes, RequestSpec, Workload};
