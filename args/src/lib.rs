//! The `duet sim` options and their translation, shared by the `duet` CLI and `duet-gpu replay`, so that a replay
//! on the GPU and `duet validate` take exactly the options of the simulation they are compared with; `record`
//! writes them into a device run's `replay.json` and reads them back.

pub mod config;
pub mod record;
pub mod sim_args;
pub mod workload;

pub use config::{config, load_workload, option_notes};
pub use sim_args::{SimArgs, WorkloadArgs};
