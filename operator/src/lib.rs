//! The MetalLB operator: reconciles the singleton `MetalLB` resource into the controller
//! Deployment and the speaker DaemonSet, and serves the validating admission webhooks.
//! Filled by the operator issue; nothing here works yet.
