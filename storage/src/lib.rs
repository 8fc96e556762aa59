//! placeholder
pub mod clock;
pub mod codec;
pub mod commit;
pub mod error;
pub mod log;
pub mod segment;
