//! One file per lifecycle command.

pub(crate) mod check;
pub(crate) mod config;
pub(crate) mod remove;
pub(crate) mod service;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod stop;
pub(crate) mod wait;
