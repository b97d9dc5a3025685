//! Replaying traces on the GPU under the simulator's policies: the step layout (`layout.rs`, pure), the model
//! with synthetic weights and its KV cache (`model.rs`), and the CUDA executor (`executor.rs`) that the engine
//! drives in wall-clock mode.

pub mod executor;
pub mod layout;
pub mod model;
pub mod run;
