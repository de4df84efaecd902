//! Sans-IO BFD control packets and session state machine (RFC 5880/5881).
//! Filled by the speaker protocol issue; nothing here works yet.
