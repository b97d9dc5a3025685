//! The `duet sim` options and their translation, shared by the `duet` CLI and `duet-gpu replay`, so that a replay
//! on the GPU and `duet validate` take exactly the options of the simulation they are compared with.

pub mod config;
pub mod sim_args;
pub mod workload;

pub use config::{config, load_workload};
pub use sim_args::{SimArgs, WorkloadArgs};
