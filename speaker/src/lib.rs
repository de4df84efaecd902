//! The MetalLB speaker's drivers: sockets and tasks around the sans-IO cores of `metallb-l2`,
//! `metallb-bgp` and `metallb-bfd`; a runner that drives them from a static configuration
//! file ([`runner`]); the speaker on a cluster node ([`node`]); the command line ([`cli`]) and
//! the `show` client ([`show`]).

pub mod bfd;
pub mod bgp;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod engine;
pub mod event;
pub mod excludel2;
pub mod l2;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod runner;
pub mod show;
pub mod status;
mod sys;
