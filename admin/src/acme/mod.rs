pub mod challenges;
pub mod client;
pub mod orders;

pub use client::*;
