//! The MetalLB speaker's drivers: sockets and tasks around the sans-IO cores of `metallb-l2`,
//! `metallb-bgp` and `metallb-bfd`, and a runner that drives them from a static configuration
//! file until the Kubernetes plumbing arrives.

pub mod bfd;
pub mod bgp;
pub mod config;
pub mod l2;
pub mod runner;
mod sys;
