//! Pure IP allocator with MetalLB's semantics: address pools, `autoAssign`, `avoidBuggyIPs`,
//! `serviceAllocation` priority and selectors, requested addresses and pools, sharing keys,
//! dual stack, pool status counts, and pool edits that keep every still-valid assignment.
//!
//! No I/O and no clock: the controller maps Kubernetes objects onto [`Pool`] and
//! [`ServiceRequest`], calls the [`Allocator`], and turns results and errors into status
//! updates and events. Error texts are MetalLB's.
//!
//! ```
//! use metallb_allocator::{parse_pool_address, Allocator, IpFamily, Pool, ServiceKey, ServiceRequest};
//!
//! let mut allocator = Allocator::new();
//! let pool = Pool::new("default", parse_pool_address("192.168.10.0/24").unwrap());
//! allocator.set_pools(vec![pool]).unwrap();
//! let req = ServiceRequest::new(ServiceKey::new("web", "frontend"), vec![IpFamily::V4]);
//! let assignment = allocator.allocate(&req).unwrap();
//! assert_eq!(assignment.ips, ["192.168.10.0".parse::<std::net::IpAddr>().unwrap()]);
//! ```

mod addr;
mod allocator;
mod converge;
mod error;
mod family;
mod freeset;
mod model;
mod pool;
mod selector;

pub use addr::{AddressError, is_buggy, parse_pool_address, summarize_range};
pub use allocator::{Allocator, Moved, PoolsChanged, Released};
pub use converge::{ClearReason, Converged, Step};
pub use error::{AllocError, ConfigError};
pub use model::{
    Assignment, IpFamily, IpFamilyPolicy, Pool, PoolCounters, Port, Protocol, ServiceAllocation,
    ServiceKey, ServiceRequest, TrafficPolicy, parse_requested_ips,
};
pub use selector::{LabelSelector, Labels, Operator, Requirement};
