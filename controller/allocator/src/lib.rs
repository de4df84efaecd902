//! Pure IP allocator with MetalLB's semantics (pools, sharing keys, dual stack), without I/O
//! or clocks. Filled by the controller issue; nothing here works yet.
