//! The MetalLB speaker: announces service IPs with ARP/NDP and BGP/BFD and withdraws them when
//! its node leaves. Filled by the speaker issues; nothing here works yet.
