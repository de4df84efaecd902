//! The MetalLB controller: assigns external IPs from address pools to Services of type
//! LoadBalancer. Filled by the controller issue; nothing here works yet.
