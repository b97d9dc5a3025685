//! Arrival traces and workload generators for duet.
//!
//! Every source (a real trace file, a seeded generator) produces the same thing: a [`Workload`], a list of
//! [`RequestSpec`]s sorted by arrival time, with arrivals in integer nanoseconds counted from the first request.
//! Nothing here simulates; the `duet-sim` crate consumes workloads.
//!
//! - [`azure`]: the Azure LLM inference trace CSV (2023 and 2024 share the format).
//! - [`generate`]: seeded Poisson arrivals with fixed or sampled lengths.
//! - [`transform`]: rate rescaling and truncation.
//! - [`load`]: opens a file and picks the format from its extension and header.

pub mod azure;
pub mod error;
pub mod generate;
pub mod load;
pub mod spec;
pub mod transform;

pub use error::TraceError;
pub use load::{BUNDLED_DEFAULT_NAME, bundled_default, load_path};
pub use spec::{RequestSpec, Workload};
