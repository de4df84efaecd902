//! Sans-IO ARP and NDP frames, responder decisions and the announcement schedule.
//! Filled by the speaker protocol issue; nothing here works yet.
