//! Sans-IO BGP-4 messages and session state machine.
//! Filled by the speaker protocol issue; nothing here works yet.
