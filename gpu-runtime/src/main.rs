//! `duet-gpu`: the GPU runtime's command line.
fn main() {}
