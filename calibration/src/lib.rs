//! GPU profiles for duet's cost model: the profile format ([`profile`]), bundled profiles for the H100-SXM, H200
//! and A100-80GB, measurement records and Vidur CSV import ([`record`]), fitting ([`fit`]) and accuracy reports
//! ([`check`]).

pub mod check;
pub mod curves;
pub mod error;
pub mod fit;
pub mod interp;
pub mod launch;
pub mod mixed;
pub mod profile;
pub mod record;
mod table;

pub use curves::ProfileCurves;
pub use error::CalibrationError;
pub use profile::Profile;
