//! The few system calls that neither `nix` nor `socket2` wrap. Each file allows `unsafe` for
//! itself and keeps every unsafe block next to the reason it is sound.

pub mod md5;
pub mod packet;
